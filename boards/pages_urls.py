"""Browser pages of the boards app."""

from django.urls import URLPattern, path

from boards import pages

urlpatterns: list[URLPattern] = [
    path("projects/<int:project_id>/board/", pages.board, name="project-board"),
]
