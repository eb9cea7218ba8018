from django.urls import path
from rest_framework.routers import DefaultRouter

from agents.api.code import card_diff, card_diff_turns, card_file, card_files
from agents.api.runs import RunViewSet, card_prompt, card_runs, card_turns, epic_runs
from agents.api.views import ModelProfileViewSet, TeamViewSet

router = DefaultRouter(trailing_slash=True)
router.register("teams", TeamViewSet, basename="team")
router.register("model-profiles", ModelProfileViewSet, basename="model-profile")
router.register("runs", RunViewSet, basename="run")

urlpatterns = [
    path("epics/<int:epic_id>/runs/", epic_runs, name="epic-runs"),
    path("cards/<int:card_id>/runs/", card_runs, name="card-runs"),
    path("cards/<int:card_id>/prompt/", card_prompt, name="card-prompt"),
    path("cards/<int:card_id>/turns/", card_turns, name="card-turns"),
    path("projects/<int:project_id>/cards/<int:card_id>/diff/", card_diff, name="card-diff"),
    path("projects/<int:project_id>/cards/<int:card_id>/diff/turns/", card_diff_turns, name="card-diff-turns"),
    path("projects/<int:project_id>/cards/<int:card_id>/files/", card_files, name="card-files"),
    path("projects/<int:project_id>/cards/<int:card_id>/file/", card_file, name="card-file"),
    *router.urls,
]
