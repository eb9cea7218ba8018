"""Admin listing of API tokens: staff see every user's tokens and revoke them by deleting."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from orket_site.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("token_key", "name", "user", "created", "expiry", "last_used")
    list_filter = ("expiry",)
    search_fields = ("token_key", "name", "user__username")
    readonly_fields = ("token_key", "name", "user", "created", "expiry", "last_used")
    exclude = ("digest",)
    list_select_related = ("user",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are made by their owner through POST /api/auth/token/

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
