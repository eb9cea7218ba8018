"""Routes of the source repository: its settings page and API (included once at the root)."""

from django.urls import URLPattern, path

from agents.sources import views

urlpatterns: list[URLPattern] = [
    path("projects/<int:project_id>/settings/source/", views.source_settings_page, name="source-settings-page"),
    path("api/projects/<int:project_id>/source/", views.source_api, name="api-source"),
    path("api/epics/<int:epic_id>/base-branch/", views.epic_base_branch_api, name="api-epic-base-branch"),
]
