from rest_framework.routers import DefaultRouter

from agents.api.views import ModelProfileViewSet, TeamViewSet

router = DefaultRouter(trailing_slash=True)
router.register("teams", TeamViewSet, basename="team")
router.register("model-profiles", ModelProfileViewSet, basename="model-profile")

urlpatterns = router.urls
