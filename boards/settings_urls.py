"""Browser pages of a project besides the board: epic page, epic import. The settings page, which
carries a section agents owns, is routed by agents.pages_urls (agents.project_settings)."""

from django.urls import URLPattern, path

from boards import settings_pages

urlpatterns: list[URLPattern] = [
    path("projects/<int:project_id>/import/", settings_pages.project_import, name="project-import-page"),
    path("epics/<int:epic_id>/", settings_pages.epic_page, name="epic-page"),
]
