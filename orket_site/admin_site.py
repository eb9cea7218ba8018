"""The admin site: Django's, with its password change going through the sign-in limits."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import reverse


class OrketAdminSite(admin.AdminSite):
    site_header = "Orket administration"
    site_title = "Orket admin"

    def password_change(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        from orket_site.views import PasswordChangeView

        request.current_app = self.name
        return PasswordChangeView.as_view(
            success_url=reverse("admin:password_change_done", current_app=self.name),
            extra_context={**self.each_context(request), **(extra_context or {})},
        )(request)
