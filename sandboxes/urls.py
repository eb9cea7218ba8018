"""Sandbox URLs: the API under /api/sandboxes/ and /api/log-streams/, and the page /projects/<id>/sandboxes/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from sandboxes import pages
from sandboxes.api.log_views import LogStreamViewSet
from sandboxes.api.views import SandboxViewSet

router = SimpleRouter(trailing_slash=True)
router.register("sandboxes", SandboxViewSet, basename="sandbox")
router.register("log-streams", LogStreamViewSet, basename="log-stream")

urlpatterns = [
    path("api/", include(router.urls)),
    path("projects/<int:project_id>/sandboxes/", pages.project_sandboxes, name="project-sandboxes"),
]
