from rest_framework.routers import DefaultRouter

from boards.api.views import ProjectViewSet

router = DefaultRouter(trailing_slash=True)
router.register("projects", ProjectViewSet, basename="project")

urlpatterns = router.urls
