"""Browser pages of the agents app (run view, run history, replay)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
