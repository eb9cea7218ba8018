"""Browser pages of the boards app."""

from django.urls import URLPattern, path

from boards import pages, work_pages

urlpatterns: list[URLPattern] = [
    path("projects/<int:project_id>/board/", pages.board, name="project-board"),
    path("projects/new/", work_pages.project_new, name="project-new"),
    path("projects/<int:project_id>/epics/new/", work_pages.epic_new, name="epic-new"),
    path("epics/<int:epic_id>/edit/", work_pages.epic_edit, name="epic-edit"),
]
