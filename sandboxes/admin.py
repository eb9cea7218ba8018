"""Admin for sandboxes, their port leases and settings, and verification fixtures and runs.

Sandbox rows change through the services (a worker owns Docker), so their lifecycle fields are read-only
here; the delete action queues a real teardown instead of removing the row under running containers."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from sandboxes import services
from sandboxes.models import PortLease, Sandbox, SandboxSettings, SandboxStatus, VerificationFixture, VerificationRun


class PortLeaseInline(admin.TabularInline):
    model = PortLease
    extra = 0
    can_delete = False
    readonly_fields = ("port", "service", "leased_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Sandbox)
class SandboxAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "card", "backend", "status", "health_checks_passed", "expires_at", "created_at")
    list_filter = ("status", "backend", "project")
    search_fields = ("name", "workspace_path")
    readonly_fields = (
        "name",
        "project",
        "card",
        "pull_request_number",
        "workspace_path",
        "stack",
        "backend",
        "isolation",
        "status",
        "last_error",
        "urls",
        "health_checks_passed",
        "health_checks_failed",
        "last_health_check_at",
        "created_by",
        "created_at",
        "updated_at",
    )
    inlines = [PortLeaseInline]
    actions = ["delete_sandboxes"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Delete the selected sandboxes (containers, volumes, ports)")
    def delete_sandboxes(self, request: HttpRequest, queryset: QuerySet[Sandbox]) -> None:
        count = 0
        for sandbox in queryset.exclude(status=SandboxStatus.DELETED):
            services.sandbox_delete(sandbox=sandbox, user=request.user)
            count += 1
        self.message_user(request, f"{count} sandboxes are being deleted.", messages.SUCCESS)


@admin.register(SandboxSettings)
class SandboxSettingsAdmin(admin.ModelAdmin):
    list_display = ("project", "time_to_live_hours", "max_sandboxes", "require_human_fixture")


@admin.register(PortLease)
class PortLeaseAdmin(admin.ModelAdmin):
    list_display = ("port", "sandbox", "service", "leased_at")
    readonly_fields = ("port", "sandbox", "service", "leased_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(VerificationFixture)
class VerificationFixtureAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "card", "scenario_count", "sha256", "created_at")
    list_filter = ("project",)
    readonly_fields = ("sha256", "storage_path", "scenario_count", "uploaded_by", "created_at")


@admin.register(VerificationRun)
class VerificationRunAdmin(admin.ModelAdmin):
    list_display = ("id", "card", "kind", "backend", "status", "passed", "failed", "errors", "created_at")
    list_filter = ("status", "kind", "backend")
    readonly_fields = [field.name for field in VerificationRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
