from django.urls import path
from rest_framework.routers import DefaultRouter

from agents.api.runs import RunViewSet, card_prompt, card_runs, card_turns, epic_run_options, epic_runs
from agents.api.views import ModelProfileViewSet, TeamViewSet

router = DefaultRouter(trailing_slash=True)
router.register("teams", TeamViewSet, basename="team")
router.register("model-profiles", ModelProfileViewSet, basename="model-profile")
router.register("runs", RunViewSet, basename="run")

urlpatterns = [
    path("epics/<int:epic_id>/runs/", epic_runs, name="epic-runs"),
    path("epics/<int:epic_id>/run-options/", epic_run_options, name="epic-run-options"),
    path("cards/<int:card_id>/runs/", card_runs, name="card-runs"),
    path("cards/<int:card_id>/prompt/", card_prompt, name="card-prompt"),
    path("cards/<int:card_id>/turns/", card_turns, name="card-turns"),
    *router.urls,
]
