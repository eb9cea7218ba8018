"""Sandboxes that run what the agents built, the host ports they lease, and verification runs.

Agent code is hostile: only the Celery worker starts containers or processes for these rows, and
every row records which isolation was really used.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from boards.models import Card, Project


class SandboxStatus(models.TextChoices):
    CREATING = "creating", "Creating"
    RUNNING = "running", "Running"
    UNHEALTHY = "unhealthy", "Unhealthy"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    DELETED = "deleted", "Deleted"
    FAILED = "failed", "Failed"


class Backend(models.TextChoices):
    DOCKER = "docker", "Docker"
    LOCAL = "local", "Local process"


class Sandbox(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sandboxes")
    card = models.ForeignKey(Card, null=True, blank=True, on_delete=models.SET_NULL, related_name="sandboxes")
    pull_request_number = models.PositiveIntegerField(null=True, blank=True)
    name = models.CharField(max_length=63, unique=True, help_text="Compose project name, sanitised.")
    workspace_path = models.CharField(max_length=1000)
    stack = models.JSONField(default=dict, blank=True, help_text="What stack detection decided.")
    backend = models.CharField(max_length=10, choices=Backend.choices)
    isolation = models.CharField(max_length=200, blank=True, help_text="Plain words on how it is isolated.")
    status = models.CharField(max_length=12, choices=SandboxStatus.choices, default=SandboxStatus.CREATING)
    last_error = models.TextField(blank=True, max_length=20_000)
    urls = models.JSONField(default=dict, blank=True, help_text="Service name to URL on 127.0.0.1.")
    health_checks_passed = models.PositiveIntegerField(default=0)
    health_checks_failed = models.PositiveIntegerField(default=0)
    last_health_check_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "status"], name="sandbox_project_status")]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=SandboxStatus.values), name="sandbox_status_valid"),
            models.CheckConstraint(condition=models.Q(backend__in=Backend.values), name="sandbox_backend_valid"),
            models.CheckConstraint(condition=~models.Q(name=""), name="sandbox_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class PortLease(models.Model):
    """A host port on 127.0.0.1 held by one sandbox service; the unique port is the lock."""

    port = models.PositiveIntegerField(unique=True)
    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="port_leases")
    service = models.CharField(max_length=63)
    leased_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["port"]
        constraints = [
            models.CheckConstraint(condition=models.Q(port__gte=1024, port__lte=65535), name="port_lease_unprivileged"),
            models.UniqueConstraint(fields=["sandbox", "service"], name="port_lease_one_per_service"),
        ]

    def __str__(self) -> str:
        return f"{self.port} for {self.sandbox_id}/{self.service}"


class VerificationFixture(models.Model):
    """Scenarios that people own, stored outside every folder an agent can write."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="verification_fixtures")
    card = models.ForeignKey(
        Card, null=True, blank=True, on_delete=models.CASCADE, related_name="verification_fixtures"
    )
    name = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    storage_path = models.CharField(max_length=1000)
    scenario_count = models.PositiveIntegerField(default=0)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"


class VerificationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"
    TIMED_OUT = "timed_out", "Timed out"


class VerificationKind(models.TextChoices):
    FIXTURE = "fixture", "Fixture scenarios"
    HTTP = "http", "HTTP scenarios against a sandbox"
    PYTEST = "pytest", "The agents' own test suite"
    CARD_TESTS = "card_tests", "The card's own tests, run by an agent (run_tests)"


class VerificationRun(models.Model):
    card = models.ForeignKey(Card, on_delete=models.CASCADE, related_name="verification_runs")
    fixture = models.ForeignKey(
        VerificationFixture, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    sandbox = models.ForeignKey(Sandbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=10, choices=VerificationKind.choices, default=VerificationKind.FIXTURE)
    backend = models.CharField(max_length=10, choices=Backend.choices)
    isolation = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=VerificationStatus.choices, default=VerificationStatus.QUEUED)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=list, blank=True, help_text="One entry per scenario.")
    output = models.TextField(blank=True, max_length=200_000)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    requested_by = models.CharField(max_length=120, blank=True, help_text="A user or a seat.")
    commit_sha = models.CharField(max_length=40, blank=True, help_text="The card's commit the run tested, if known.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["card", "-created_at"], name="verification_card_latest")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=VerificationStatus.values), name="verification_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"verification {self.id} of card {self.card_id}: {self.status}"


class SandboxSettings(models.Model):
    """Per-project sandbox settings, kept in this app so the boards app needs no migration."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="sandbox_settings")
    time_to_live_hours = models.PositiveIntegerField(
        default=24, help_text="A sandbox is deleted this long after it was created (0 keeps it until deleted)."
    )
    max_sandboxes = models.PositiveIntegerField(default=5, help_text="Live sandboxes the project may hold at once.")
    require_human_fixture = models.BooleanField(
        default=False,
        help_text="Only a verification fixture owned by a person counts for the done gate; a passing run of the "
        "card's own tests (run_tests) is recorded but does not verify the card.",
    )

    class Meta:
        verbose_name_plural = "sandbox settings"

    def __str__(self) -> str:
        return f"sandbox settings of {self.project}"


class LogStreamKind(models.TextChoices):
    SERVICE = "service", "A sandbox's running services"
    VERIFICATION = "verification", "A verification run"
    COMMAND = "command", "An agent's command"


class LogChannel(models.TextChoices):
    STDOUT = "stdout", "Standard output"
    STDERR = "stderr", "Standard error"


class LogStream(models.Model):
    """Output that reaches browsers as it is produced: lines numbered 1, 2, 3... per stream.

    `cursor` is where each producer (a log file, a container) has been read to, written in the same
    transaction as the lines it read, so a follower that restarts resumes there without a duplicate.
    `follower` and `followed_until` are the lease of the one thread that follows a sandbox's logs.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="log_streams")
    kind = models.CharField(max_length=12, choices=LogStreamKind.choices)
    label = models.CharField(max_length=200)
    sandbox = models.ForeignKey(Sandbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="log_streams")
    verification_run = models.ForeignKey(
        VerificationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="log_streams"
    )
    refs = models.JSONField(default=dict, blank=True, help_text="What else the output belongs to: card, run, turn.")
    last_seq = models.PositiveBigIntegerField(default=0)
    trimmed_through = models.PositiveBigIntegerField(default=0, help_text="Lines up to this one were dropped.")
    cursor = models.JSONField(default=dict, blank=True, help_text="Where each producer was read to.")
    follower = models.CharField(max_length=100, blank=True)
    followed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "kind"], name="log_stream_project_kind")]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=LogStreamKind.values), name="log_stream_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"log stream {self.pk}: {self.label}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class LogLine(models.Model):
    stream = models.ForeignKey(LogStream, on_delete=models.CASCADE, related_name="lines")
    seq = models.PositiveBigIntegerField()
    channel = models.CharField(max_length=6, choices=LogChannel.choices, default=LogChannel.STDOUT)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["stream", "seq"]
        constraints = [models.UniqueConstraint(fields=["stream", "seq"], name="log_line_seq_unique")]

    def __str__(self) -> str:
        return f"{self.stream_id}#{self.seq}"
