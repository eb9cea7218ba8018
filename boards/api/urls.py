from django.urls import path
from rest_framework.routers import DefaultRouter

from boards.api.views import ProjectViewSet
from boards.api.work_views import (
    CardViewSet,
    EpicImportView,
    EpicViewSet,
    ProjectBoardView,
    ProjectSettingsView,
    RockViewSet,
)

router = DefaultRouter(trailing_slash=True)
router.register("projects", ProjectViewSet, basename="project")
router.register("rocks", RockViewSet, basename="rock")
router.register("epics", EpicViewSet, basename="epic")
router.register("cards", CardViewSet, basename="card")

urlpatterns = [
    path("projects/<int:pk>/import/", EpicImportView.as_view(), name="project-import"),
    path("projects/<int:pk>/settings/", ProjectSettingsView.as_view(), name="project-settings"),
    path("projects/<int:pk>/board/", ProjectBoardView.as_view(), name="project-board-api"),
    *router.urls,
]
