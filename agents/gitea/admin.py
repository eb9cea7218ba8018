"""Admin of the Gitea integration: links (secrets never shown), deliveries with a re-process action."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages

from agents.gitea import services
from agents.gitea.models import ForgeEventKey, GiteaLink, PullRequestLink, WebhookDelivery


@admin.register(GiteaLink)
class GiteaLinkAdmin(admin.ModelAdmin):
    list_display = (
        "project",
        "base_url",
        "owner",
        "repo",
        "enabled",
        "auto_merge",
        "auto_deploy",
        "refused_deliveries",
    )
    exclude = ("token_encrypted", "webhook_secret_encrypted")
    readonly_fields = ("refused_deliveries", "last_refused_at", "last_reconciled_at")


@admin.action(description="Re-process the selected deliveries")
def reprocess(modeladmin: Any, request: Any, queryset: Any) -> None:
    for delivery in queryset:
        done = services.delivery_process(delivery_id=delivery.pk, force=True)
        messages.info(request, f"{done.delivery_id}: {done.status}. {done.result}")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("received_at", "project", "event", "action", "status", "delivery_id")
    list_filter = ("status", "event")
    search_fields = ("delivery_id", "meaning_key")
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
    actions = [reprocess]


@admin.register(PullRequestLink)
class PullRequestLinkAdmin(admin.ModelAdmin):
    list_display = ("number", "project", "card", "state", "review_cycle", "head_sha")
    list_filter = ("state",)


@admin.register(ForgeEventKey)
class ForgeEventKeyAdmin(admin.ModelAdmin):
    list_display = ("created_at", "project", "source", "key")
    readonly_fields = ("project", "key", "delivery", "source", "created_at")
