"""A project's source repository (app label `agents`; imported at the bottom of agents/models.py).

One row per project that has a source: where it comes from (the linked Gitea repository, another git
remote, or a local path under the operator's roots), the name of the ORKET_SECRET_ variable holding
its token (never the token), and where its clone and last fetch stand.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from agents.outbound_policy import validate_secret_variable


class SourceKind(models.TextChoices):
    GITEA = "gitea", "The linked Gitea repository"
    REMOTE = "remote", "A git remote URL"
    LOCAL = "local", "A local path on the server"


class SourceState(models.TextChoices):
    CLONING = "cloning", "Cloning"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class SourceRepository(models.Model):
    project = models.OneToOneField("boards.Project", on_delete=models.CASCADE, related_name="source_repository")
    kind = models.CharField(max_length=10, choices=SourceKind.choices)
    url = models.CharField(max_length=500, blank=True, help_text="The remote's http(s) URL (kind remote).")
    local_path = models.CharField(max_length=1000, blank=True, help_text="A path under ORKET_LOCAL_REPO_ROOTS.")
    token_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_secret_variable],
        help_text="Name of an ORKET_SECRET_ environment variable holding the token; the token is never stored.",
    )
    state = models.CharField(max_length=10, choices=SourceState.choices, default=SourceState.CLONING)
    progress = models.PositiveSmallIntegerField(default=0)
    progress_phase = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True, max_length=4000)
    default_branch = models.CharField(max_length=200, blank=True)
    head_sha = models.CharField(max_length=64, blank=True)
    generation = models.PositiveIntegerField(default=1, help_text="Raised on every change; a stale clone is ignored.")
    cloned_at = models.DateTimeField(null=True, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)
    fetch_error = models.TextField(blank=True, max_length=4000)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "agents"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=[k.value for k in SourceKind]), name="source_repository_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=[s.value for s in SourceState]), name="source_repository_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"source of project {self.project_id} ({self.kind}, {self.state})"

    @property
    def location(self) -> str:
        """What people see as the source: the URL or the path."""
        return self.local_path if self.kind == SourceKind.LOCAL else self.url
