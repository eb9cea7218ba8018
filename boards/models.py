"""Projects and membership, and the work model on them: rocks hold epics, epics hold cards.

Statuses change only through `boards.services.card_transition`; the rules live in `boards.machine`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from boards import machine


class ProjectRole(models.TextChoices):
    """Membership roles, weakest first: viewers read, members act, maintainers administer."""

    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    MAINTAINER = "maintainer", "Maintainer"

    @classmethod
    def rank(cls, role: str) -> int:
        return [cls.VIEWER, cls.MEMBER, cls.MAINTAINER].index(cls(role))


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True, max_length=20_000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects", blank=True
    )
    architecture_governance = models.BooleanField(
        default=False, help_text="Agents must write code under recognised component folders."
    )
    complexity_threshold = models.PositiveIntegerField(
        default=7, help_text="Epics with more cards than this need architecture governance to run."
    )
    wip_limits = models.JSONField(default=dict, blank=True, help_text="Work-in-progress limits per status.")
    require_verification = models.BooleanField(
        default=True,
        help_text="Agents may move a card to done only when its latest code passed a verification.",
    )
    archived_at = models.DateTimeField(null=True, blank=True, help_text="Hidden from lists since then.")

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(complexity_threshold__gte=1), name="project_threshold_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=ProjectRole.choices, default=ProjectRole.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user_per_project"),
            models.CheckConstraint(condition=models.Q(role__in=ProjectRole.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(value, value.replace("_", " ").capitalize()) for value in values]


STATUS_CHOICES = _choices(machine.STATUSES)
EPIC_STATUS_CHOICES = _choices(machine.statuses_for(machine.EPIC))
ROCK_STATUS_CHOICES = _choices(machine.statuses_for(machine.ROCK))
WAIT_REASON_CHOICES = [("", "None"), *((name, name.capitalize()) for name in machine.WAIT_REASONS)]
VERIFICATION_CHOICES = [("", "Not run"), ("passed", "Passed"), ("failed", "Failed")]
PRIORITY_WORDS = {"high": 3.0, "medium": 2.0, "low": 1.0}
PRIORITY_MIN, PRIORITY_MAX = 0.0, 10.0
TITLE_MAX = 300
TEXT_MAX = 50_000
SHIPPABILITY_THRESHOLD = 7.0


def default_metrics() -> dict[str, Any]:
    """A card's quality metrics before any review has scored it."""
    return {"score": None, "grade": "", "shippability_threshold": SHIPPABILITY_THRESHOLD}


class Rock(models.Model):
    """A quarterly goal; holds epics."""

    item_type: ClassVar[str] = machine.ROCK

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rocks")
    name = models.CharField(max_length=TITLE_MAX)
    description = models.TextField(blank=True, max_length=TEXT_MAX)
    status = models.CharField(max_length=32, choices=ROCK_STATUS_CHOICES, default=machine.READY)
    rank = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project_id", "rank", "id"]
        indexes = [models.Index(fields=["project", "status"], name="rock_project_status")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=machine.statuses_for(machine.ROCK)), name="rock_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Epic(models.Model):
    """A body of work run by a team; holds cards."""

    item_type: ClassVar[str] = machine.EPIC

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="epics")
    rock = models.ForeignKey(Rock, null=True, blank=True, on_delete=models.SET_NULL, related_name="epics")
    name = models.CharField(max_length=TITLE_MAX)
    description = models.TextField(blank=True, max_length=TEXT_MAX)
    status = models.CharField(max_length=32, choices=EPIC_STATUS_CHOICES, default=machine.READY)
    team = models.CharField(max_length=100, blank=True)
    environment = models.CharField(max_length=100, blank=True)
    architecture_governance = models.BooleanField(
        default=False, help_text="iDesign architecture governance for this epic (the project setting also counts)."
    )
    rank = models.FloatField(default=0.0)
    archived_at = models.DateTimeField(null=True, blank=True, help_text="Hidden from lists since then.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project_id", "rank", "id"]
        indexes = [models.Index(fields=["project", "status"], name="epic_project_status")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=machine.statuses_for(machine.EPIC)), name="epic_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Card(models.Model):
    """An issue on the board."""

    item_type: ClassVar[str] = machine.ISSUE

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="cards")
    epic = models.ForeignKey(Epic, on_delete=models.CASCADE, related_name="cards")
    title = models.CharField(max_length=TITLE_MAX)
    description = models.TextField(blank=True, max_length=TEXT_MAX)
    status = models.CharField(max_length=32, choices=STATUS_CHOICES, default=machine.READY)
    priority = models.FloatField(default=2.0)
    wait_reason = models.CharField(max_length=20, choices=WAIT_REASON_CHOICES, blank=True, default="")
    seat = models.CharField(max_length=80, blank=True, help_text="The team seat that works this card.")
    requirements = models.TextField(blank=True, max_length=TEXT_MAX)
    acceptance_criteria = models.TextField(blank=True, max_length=TEXT_MAX)
    labels = models.JSONField(default=list, blank=True)
    verification_fixture = models.CharField(max_length=500, blank=True)
    verification_scenarios = models.JSONField(default=list, blank=True)
    last_verification = models.CharField(max_length=10, choices=VERIFICATION_CHOICES, blank=True, default="")
    last_worked_by_seat = models.CharField(max_length=120, blank=True)
    metrics = models.JSONField(
        default=default_metrics, blank=True, help_text="score, grade, shippability_threshold (7.0)."
    )
    note = models.TextField(blank=True, max_length=TEXT_MAX)
    rank = models.FloatField(default=0.0)
    # Set by the forge integration (agents.gitea) through services.card_review_record, never edited.
    pull_request = models.JSONField(default=dict, blank=True, help_text="{number, url, state} of the card's PR.")
    review_cycle = models.PositiveIntegerField(default=0, help_text="Changes requested so far on the PR.")
    review_reasons = models.JSONField(default=list, blank=True, help_text="[{cycle, reviewer, text, at}]")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rank", "id"]
        indexes = [
            models.Index(fields=["project", "status"], name="card_project_status"),
            models.Index(fields=["epic", "status"], name="card_epic_status"),
            models.Index(fields=["project", "seat"], name="card_project_seat"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=machine.STATUSES), name="card_status_valid"),
            models.CheckConstraint(
                condition=models.Q(wait_reason__in=["", *machine.WAIT_REASONS]), name="card_wait_reason_valid"
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(status__in=sorted(machine.WAITING_STATUSES)) & ~models.Q(wait_reason="")
                    | ~models.Q(status__in=sorted(machine.WAITING_STATUSES)) & models.Q(wait_reason="")
                ),
                name="card_wait_reason_iff_waiting",
            ),
            models.CheckConstraint(
                condition=models.Q(last_verification__in=machine.VERIFICATION_RESULTS),
                name="card_last_verification_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(priority__gte=PRIORITY_MIN, priority__lte=PRIORITY_MAX), name="card_priority_range"
            ),
        ]

    def __str__(self) -> str:
        return self.title


class CardDependency(models.Model):
    """`card` cannot start until `depends_on` is done."""

    card = models.ForeignKey(Card, on_delete=models.CASCADE, related_name="dependency_links")
    depends_on = models.ForeignKey(Card, on_delete=models.CASCADE, related_name="dependent_links")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["card_id", "depends_on_id"]
        constraints = [
            models.UniqueConstraint(fields=["card", "depends_on"], name="card_dependency_unique"),
            models.CheckConstraint(condition=~models.Q(card=models.F("depends_on")), name="card_dependency_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.card_id} depends on {self.depends_on_id}"


class Comment(models.Model):
    card = models.ForeignKey(Card, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_seat = models.CharField(max_length=80, blank=True)
    body = models.TextField(max_length=TEXT_MAX)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Comment {self.pk} on card {self.card_id}"


class HistoryEvent(models.TextChoices):
    CREATED = "created", "Created"
    TRANSITION = "transition", "Status change"
    EDITED = "edited", "Edited"
    DEPENDENCY_ADDED = "dependency_added", "Dependency added"
    DEPENDENCY_REMOVED = "dependency_removed", "Dependency removed"
    DECISION = "decision", "Decision by a person"


class AppendOnlyError(Exception):
    pass


class CardHistory(models.Model):
    """Append-only record of every change to a card, epic or rock (exactly one of the three)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="history")
    card = models.ForeignKey(Card, null=True, blank=True, on_delete=models.CASCADE, related_name="history")
    epic = models.ForeignKey(Epic, null=True, blank=True, on_delete=models.CASCADE, related_name="history")
    rock = models.ForeignKey(Rock, null=True, blank=True, on_delete=models.CASCADE, related_name="history")
    event = models.CharField(max_length=24, choices=HistoryEvent.choices, default=HistoryEvent.TRANSITION)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_seat = models.CharField(max_length=120, blank=True)
    actor_roles = models.JSONField(default=list, blank=True)
    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32, blank=True)
    wait_reason = models.CharField(max_length=20, blank=True)
    reason = models.TextField(blank=True, max_length=TEXT_MAX)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "card history"
        indexes = [models.Index(fields=["project", "created_at"], name="history_project_time")]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(card__isnull=False, epic__isnull=True, rock__isnull=True)
                    | models.Q(card__isnull=True, epic__isnull=False, rock__isnull=True)
                    | models.Q(card__isnull=True, epic__isnull=True, rock__isnull=False)
                ),
                name="history_exactly_one_subject",
            ),
            models.CheckConstraint(condition=models.Q(event__in=HistoryEvent.values), name="history_event_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.from_status}->{self.to_status} at {self.created_at}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("History rows are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("History rows are append-only; they cannot be deleted.")
