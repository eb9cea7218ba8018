"""Browser pages of the agents app (run view, run history, replay)."""

from django.urls import URLPattern, path

from agents import pages, plan_pages

urlpatterns: list[URLPattern] = [
    path("runs/<int:run_id>/", pages.run_view, name="run-view"),
    path("runs/<int:run_id>/replay/", pages.run_replay, name="run-replay"),
    path("projects/<int:project_id>/runs/", pages.project_runs, name="project-runs"),
    path("projects/<int:project_id>/settings/approvals/", pages.approval_settings, name="approval-settings"),
    path("epics/<int:epic_id>/plan/", plan_pages.epic_plan, name="epic-plan"),
    path("plans/<int:plan_id>/", plan_pages.plan_page, name="plan-page"),
]
