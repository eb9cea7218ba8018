"""Rows of the Gitea integration (app label `agents`; imported at the bottom of agents/models.py).

- GiteaLink: a project's repository, token, webhook secret and review policy. Refused (unsigned or
  wrongly signed) deliveries are counted in the cache, never in the database: a caller without the
  secret writes nothing here.
- WebhookDelivery: every accepted delivery, with what became of it.
- ForgeEventKey: the meaning of each processed delivery (repository, pull request, action, head commit
  or review), unique per project, so a replayed delivery with a new id is processed once.
- PullRequestLink: the pull request Orket opened for a card, and where its review stands.
"""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache
from django.db import models
from django.utils import timezone

from agents import outbound_policy
from agents.gitea import crypto
from agents.outbound_policy import validate_outbound_url, validate_secret_variable


class GiteaLink(models.Model):
    project = models.OneToOneField("boards.Project", on_delete=models.CASCADE, related_name="gitea_link")
    enabled = models.BooleanField(default=True)
    base_url = models.URLField(
        max_length=300,
        validators=[validate_outbound_url],
        help_text="e.g. https://gitea.example.com (a host the operator allows in ORKET_OUTBOUND_HOSTS)",
    )
    owner = models.CharField(max_length=100)
    repo = models.CharField(max_length=100)
    base_branch = models.CharField(max_length=200, default="main")
    token_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_secret_variable],
        help_text="Name of an environment variable holding the API token; it must start with ORKET_SECRET_.",
    )
    token_encrypted = models.TextField(blank=True, help_text="The API token, encrypted; never shown again.")
    webhook_secret_encrypted = models.TextField(blank=True)
    required_reviewers = models.JSONField(default=list, blank=True, help_text="Gitea logins; empty: anyone.")
    required_approvals = models.PositiveSmallIntegerField(default=1)
    auto_merge = models.BooleanField(default=False)
    auto_deploy = models.BooleanField(default=False)
    escalation_cycle = models.PositiveSmallIntegerField(default=3)
    max_cycles = models.PositiveSmallIntegerField(default=4)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "agents"

    def __str__(self) -> str:
        return f"{self.owner}/{self.repo} on {self.base_url}"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}".lower()

    @property
    def has_token(self) -> bool:
        return bool(self.token_env or self.token_encrypted)

    def token(self) -> str:
        """The API token: from the named environment variable, else the stored one. A variable name
        without the ORKET_SECRET_ prefix (saved before the rule existed) raises SecretVariableNotAllowed (a 400)."""
        if self.token_env:
            return outbound_policy.secret_variable_read(self.token_env)
        return crypto.decrypt(self.token_encrypted)

    def _refused_key(self) -> str:
        # The creation time keeps a new link from inheriting the count of an earlier row with its id.
        created = self.created_at.timestamp() if self.created_at else 0
        return f"orket:gitea:refused:{self.pk}:{created:.6f}"

    def refused_count(self) -> None:
        """Count one refused delivery (in the cache: an unsigned caller writes nothing to the database)."""
        key = self._refused_key()
        cache.add(key, 0, timeout=None)
        try:
            cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=None)
        cache.set(f"{key}:last", timezone.now(), timeout=None)

    @property
    def refused_deliveries(self) -> int:
        return int(cache.get(self._refused_key()) or 0)

    @property
    def last_refused_at(self) -> datetime | None:
        return cache.get(f"{self._refused_key()}:last")

    def webhook_secret(self) -> str:
        return crypto.decrypt_cached(self.webhook_secret_encrypted)

    def reviewers(self) -> list[str]:
        return [str(name).strip().lower() for name in self.required_reviewers or [] if str(name).strip()]


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSED = "processed", "Processed"
    DUPLICATE = "duplicate", "Duplicate"
    IGNORED = "ignored", "Ignored"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    project = models.ForeignKey("boards.Project", on_delete=models.CASCADE, related_name="gitea_deliveries")
    delivery_id = models.CharField(max_length=100)
    event = models.CharField(max_length=60)
    event_type = models.CharField(max_length=80, blank=True)
    action = models.CharField(max_length=40, blank=True)
    payload = models.JSONField(default=dict)
    payload_sha256 = models.CharField(max_length=64)
    meaning_key = models.CharField(max_length=400, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    result = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "agents"
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "delivery_id"], name="gitea_delivery_unique"),
        ]
        indexes = [models.Index(fields=["project", "meaning_key"], name="gitea_delivery_meaning")]

    def __str__(self) -> str:
        return f"{self.event}/{self.action} {self.delivery_id}"


class ForgeEventKey(models.Model):
    project = models.ForeignKey("boards.Project", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=400)
    delivery = models.ForeignKey(WebhookDelivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=20, default="webhook")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "agents"
        constraints = [models.UniqueConstraint(fields=["project", "key"], name="gitea_event_key_unique")]

    def __str__(self) -> str:
        return self.key


class PullRequestState(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"
    MERGED = "merged", "Merged"


class PullRequestLink(models.Model):
    project = models.ForeignKey("boards.Project", on_delete=models.CASCADE, related_name="pull_requests")
    card = models.ForeignKey("boards.Card", on_delete=models.CASCADE, related_name="pull_requests")
    number = models.PositiveIntegerField()
    url = models.URLField(max_length=500, blank=True)
    state = models.CharField(max_length=10, choices=PullRequestState.choices, default=PullRequestState.OPEN)
    head_branch = models.CharField(max_length=200)
    head_sha = models.CharField(max_length=64, blank=True)
    last_pushed_sha = models.CharField(max_length=64, blank=True)
    approvals = models.JSONField(default=dict, blank=True, help_text="{login: head sha approved}")
    review_cycle = models.PositiveSmallIntegerField(default=0)
    agent_review_requested = models.BooleanField(default=False)
    escalated_from_seat = models.CharField(max_length=80, blank=True)
    closed_by_orket = models.BooleanField(default=False)
    requirements_card = models.ForeignKey(
        "boards.Card", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sandbox_url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "agents"
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="gitea_pull_unique")]

    def __str__(self) -> str:
        return f"PR #{self.number} of card {self.card_id}"
