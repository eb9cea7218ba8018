from django.urls import path
from rest_framework.routers import DefaultRouter

from agents.api.approvals import (
    approval_decide,
    card_answer,
    card_waiting,
    project_approval_tools,
    run_approvals,
)
from agents.api.code import card_diff, card_diff_turns, card_file, card_files
from agents.api.plans import epic_plans, plan_accept, plan_detail, plan_discard
from agents.api.runs import RunViewSet, card_prompt, card_runs, card_turns, epic_run_options, epic_runs
from agents.api.views import ModelProfileViewSet, TeamViewSet

router = DefaultRouter(trailing_slash=True)
router.register("teams", TeamViewSet, basename="team")
router.register("model-profiles", ModelProfileViewSet, basename="model-profile")
router.register("runs", RunViewSet, basename="run")

urlpatterns = [
    path("epics/<int:epic_id>/runs/", epic_runs, name="epic-runs"),
    path("epics/<int:epic_id>/plans/", epic_plans, name="epic-plans"),
    path("plans/<int:plan_id>/", plan_detail, name="plan-detail"),
    path("plans/<int:plan_id>/accept/", plan_accept, name="plan-accept"),
    path("plans/<int:plan_id>/discard/", plan_discard, name="plan-discard"),
    path("epics/<int:epic_id>/run-options/", epic_run_options, name="epic-run-options"),
    path("cards/<int:card_id>/runs/", card_runs, name="card-runs"),
    path("cards/<int:card_id>/prompt/", card_prompt, name="card-prompt"),
    path("cards/<int:card_id>/turns/", card_turns, name="card-turns"),
    path("cards/<int:card_id>/waiting/", card_waiting, name="card-waiting"),
    path("cards/<int:card_id>/answer/", card_answer, name="card-answer"),
    path("runs/<int:run_id>/approvals/", run_approvals, name="run-approvals"),
    path("approvals/<int:approval_id>/decide/", approval_decide, name="approval-decide"),
    path("projects/<int:project_id>/approval-tools/", project_approval_tools, name="project-approval-tools"),
    path("projects/<int:project_id>/cards/<int:card_id>/diff/", card_diff, name="card-diff"),
    path("projects/<int:project_id>/cards/<int:card_id>/diff/turns/", card_diff_turns, name="card-diff-turns"),
    path("projects/<int:project_id>/cards/<int:card_id>/files/", card_files, name="card-files"),
    path("projects/<int:project_id>/cards/<int:card_id>/file/", card_file, name="card-file"),
    *router.urls,
]
