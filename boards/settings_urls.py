"""Browser pages of a project besides the board: settings, epic page, epic import."""

from django.urls import URLPattern, path

from boards import settings_pages

urlpatterns: list[URLPattern] = [
    path("projects/<int:project_id>/settings/", settings_pages.project_settings, name="project-settings-page"),
    path("projects/<int:project_id>/import/", settings_pages.project_import, name="project-import-page"),
    path("epics/<int:epic_id>/", settings_pages.epic_page, name="epic-page"),
]
