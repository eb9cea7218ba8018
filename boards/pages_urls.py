"""Browser pages of the boards app."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
