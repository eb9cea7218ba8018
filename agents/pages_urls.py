"""Browser pages of the agents app (run view, run history, replay, model profiles, teams)."""

from django.urls import URLPattern, path

from agents import pages, plan_pages, profile_pages, project_settings

urlpatterns: list[URLPattern] = [
    path("runs/<int:run_id>/", pages.run_view, name="run-view"),
    path("runs/<int:run_id>/replay/", pages.run_replay, name="run-replay"),
    path("projects/<int:project_id>/runs/", pages.project_runs, name="project-runs"),
    path("projects/<int:project_id>/settings/", project_settings.project_settings_page, name="project-settings-page"),
    path("projects/<int:project_id>/settings/approvals/", pages.approval_settings, name="approval-settings"),
    path("epics/<int:epic_id>/plan/", plan_pages.epic_plan, name="epic-plan"),
    path("plans/<int:plan_id>/", plan_pages.plan_page, name="plan-page"),
    path("settings/models/", profile_pages.model_profiles, name="model-profiles"),
    path("settings/models/new/", profile_pages.model_profile_form, name="model-profile-new"),
    path("settings/models/<int:profile_id>/", profile_pages.model_profile_form, name="model-profile-edit"),
    path("settings/models/<int:profile_id>/delete/", profile_pages.model_profile_delete, name="model-profile-delete"),
    path("settings/models/<int:profile_id>/test/", profile_pages.model_profile_test, name="model-profile-test"),
    path(
        "settings/models/projects/<int:project_id>/default/",
        profile_pages.project_default_set,
        name="project-default-profile",
    ),
    path("teams/", profile_pages.teams_page, name="teams-page"),
    path("teams/seats/<int:seat_id>/model/", profile_pages.seat_profile_set, name="seat-profile"),
]
