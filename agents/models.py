"""Team configuration: roles, teams and their seats, dialects and model profiles.

API keys are never stored: a profile names the environment variable that holds its key, and only
variables the operator marked for secrets (ORKET_SECRET_...) may be named (agents.secret_variables).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from agents import outbound, outbound_policy
from agents.catalog import is_env_var_name, unknown_tools
from agents.outbound_policy import validate_outbound_url, validate_secret_variable

logger = logging.getLogger(__name__)

slug_name = RegexValidator(
    r"^[a-z][a-z0-9_-]{0,79}$", "Use lowercase letters, digits, '_' and '-', starting with a letter."
)


def validate_tool_list(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Allowed tools must be a list of tool names.")
    unknown = unknown_tools(value)
    if unknown:
        raise ValidationError(f"Unknown tools: {', '.join(unknown)}.")


def validate_text_list(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Expected a list of strings.")


def validate_env_var_name(value: str) -> None:
    """Kept for migration 0001; profiles now use validate_secret_variable."""
    if value and not is_env_var_name(value):
        raise ValidationError("Name an environment variable (uppercase letters, digits and '_'), not a key.")


class Role(models.Model):
    name = models.CharField(max_length=80, unique=True, validators=[slug_name])
    intent = models.TextField(max_length=4000)
    responsibilities = models.JSONField(default=list, blank=True, validators=[validate_text_list])
    constraints = models.JSONField(default=list, blank=True, validators=[validate_text_list])
    allowed_tools = models.JSONField(default=list, blank=True, validators=[validate_tool_list])
    can_finalize = models.BooleanField(
        default=False, help_text="May move an issue to done (never for work its own seat did)."
    )
    is_project_manager = models.BooleanField(default=False, help_text="May cancel cards.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Dialect(models.Model):
    class OutputFormat(models.TextChoices):
        JSON = "json", "JSON tool calls in text"
        NATIVE_TOOLS = "native_tools", "Native tool-call fields"
        TEXT = "text", "Plain text"

    name = models.CharField(max_length=80, unique=True, validators=[slug_name])
    model_family = models.CharField(max_length=80)
    output_format = models.CharField(max_length=20, choices=OutputFormat.choices, default=OutputFormat.JSON)
    constraints = models.JSONField(default=list, blank=True, validators=[validate_text_list])
    guardrail = models.TextField(blank=True, max_length=4000)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(output_format__in=["json", "native_tools", "text"]),
                name="dialect_output_format_valid",
            )
        ]

    def __str__(self) -> str:
        return self.name


class ModelProfile(models.Model):
    class Provider(models.TextChoices):
        OLLAMA = "ollama", "Ollama"
        OPENAI = "openai", "OpenAI-compatible (llama.cpp, vLLM, LM Studio, OpenAI)"
        SCRIPTED = "scripted", "Scripted (demo and tests)"

    name = models.CharField(max_length=80, unique=True, validators=[slug_name])
    provider = models.CharField(max_length=20, choices=Provider.choices)
    base_url = models.URLField(blank=True, max_length=500, validators=[validate_outbound_url])
    model = models.CharField(max_length=200)
    temperature = models.FloatField(default=0.2, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    seed = models.BigIntegerField(null=True, blank=True)
    context_size = models.PositiveIntegerField(
        default=8192, validators=[MinValueValidator(512), MaxValueValidator(1_048_576)]
    )
    max_tokens = models.PositiveIntegerField(default=2048, validators=[MinValueValidator(1)])
    timeout_seconds = models.FloatField(default=120.0, validators=[MinValueValidator(1.0), MaxValueValidator(3600.0)])
    retry_attempts = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="Attempts for connection errors, timeouts, 429 and 5xx (exponential backoff with jitter).",
    )
    retry_base_delay = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(60.0)],
        help_text="Seconds before the second attempt; doubled for each later one.",
    )
    tokens_per_second = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1)],
        help_text="Scripted provider only: streaming speed (empty: as fast as possible).",
    )
    supports_native_tools = models.BooleanField(default=False)
    supports_json_schema = models.BooleanField(
        default=False, help_text="Ask for constrained output: a JSON schema admitting exactly one allowed action."
    )
    json_schema_shape = models.CharField(
        max_length=20,
        blank=True,
        help_text="How the server took a schema, found out on first use (json_schema, json_object, ollama_format).",
    )
    chars_per_token = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.5), MaxValueValidator(16.0)],
        help_text="Characters per token measured with the server's tokenizer; empty: a conservative estimate.",
    )
    max_steps = models.PositiveSmallIntegerField(
        default=16,
        validators=[MinValueValidator(1), MaxValueValidator(200)],
        help_text="Model calls one turn may make before it ends.",
    )
    turn_seconds = models.PositiveIntegerField(
        default=1800,
        validators=[MinValueValidator(10), MaxValueValidator(86_400)],
        help_text="Wall time one turn may take; no new step starts after it.",
    )
    api_key_env = models.CharField(
        max_length=128,
        blank=True,
        validators=[validate_secret_variable],
        help_text="Name of the environment variable holding the API key (it must start with ORKET_SECRET_); "
        "the key itself is never stored.",
    )
    dialect = models.ForeignKey(Dialect, null=True, blank=True, on_delete=models.SET_NULL, related_name="profiles")
    scripted_replies = models.JSONField(
        default=list, blank=True, help_text="For the scripted provider: the replies it plays back, in order."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(provider__in=["ollama", "openai", "scripted"]), name="profile_provider_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(provider="scripted") | ~models.Q(base_url=""), name="profile_base_url_required"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider}: {self.model})"

    def connection_options(self) -> dict[str, Any]:
        """httpx options for the provider: every connection to the model server is checked against
        the operator's outbound policy (ORKET_OUTBOUND_HOSTS) when it is made; a profile naming an API
        key variable that is not marked for secrets (a row from before the rule) connects nowhere."""
        if self.api_key_env:
            try:
                outbound_policy.secret_variable_check(self.api_key_env)
            except outbound_policy.SecretVariableNotAllowed as refused:
                return {"transport": outbound.RefusingTransport(refused.message), "trust_env": False}
        return outbound_policy.http_client_options()

    def api_key(self) -> str | None:
        """The key from the environment at call time, or None when none is configured or set, or when
        the named variable is not one marked for secrets (a row saved before the rule existed)."""
        if not self.api_key_env:
            return None
        try:
            return outbound_policy.secret_variable_read(self.api_key_env) or None
        except outbound_policy.SecretVariableNotAllowed:
            logger.warning(
                "model profile %s names an API key variable without the %s prefix; no key is sent",
                self.name,
                "ORKET_SECRET_",
            )
            return None


class Team(models.Model):
    name = models.CharField(max_length=80, unique=True, validators=[slug_name])
    description = models.TextField(blank=True, max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Seat(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="seats")
    name = models.CharField(max_length=80, validators=[slug_name])
    roles = models.ManyToManyField(Role, related_name="seats")
    model_profile = models.ForeignKey(
        ModelProfile, null=True, blank=True, on_delete=models.SET_NULL, related_name="seats"
    )
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["team_id", "order", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="seat_unique_name_per_team")]

    def __str__(self) -> str:
        return f"{self.team.name}/{self.name}"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


RUN_FINAL_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED)


class Run(models.Model):
    """One execution of an epic (or of one card) by a team, turn by turn."""

    project = models.ForeignKey("boards.Project", on_delete=models.CASCADE, related_name="runs")
    epic = models.ForeignKey("boards.Epic", on_delete=models.CASCADE, related_name="runs")
    card = models.ForeignKey(
        "boards.Card",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="single_runs",
        help_text="Set when the run works one card rather than the whole epic.",
    )
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="runs")
    model_profile = models.ForeignKey(ModelProfile, on_delete=models.PROTECT, related_name="runs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    status_reason = models.TextField(blank=True, max_length=20_000)
    cancel_requested = models.BooleanField(default=False)
    max_parallel = models.PositiveSmallIntegerField(default=2, validators=[MinValueValidator(1), MaxValueValidator(16)])
    turns_per_card = models.PositiveSmallIntegerField(default=12)
    token_budget = models.PositiveIntegerField(default=500_000)
    card_token_budget = models.PositiveIntegerField(
        default=200_000, help_text="Tokens one card may use in this run before it waits for a person."
    )
    profile_is_override = models.BooleanField(
        default=False, help_text="The run's profile was chosen when starting it and wins over seat and epic profiles."
    )
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    last_seq = models.PositiveBigIntegerField(default=0, help_text="Sequence number of the latest run event.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=[s.value for s in RunStatus]), name="run_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["project", "status"])]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.epic_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in RUN_FINAL_STATUSES


class TurnStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    WAITING = "waiting", "Waiting for approval"


TURN_ACTIVE_STATUSES = (TurnStatus.QUEUED, TurnStatus.RUNNING)


class TurnFailure(models.TextChoices):
    """Why a failed turn failed, when the engine acts on the reason."""

    NONE = "", "None"
    MODEL_UNAVAILABLE = "model_unavailable", "Model server unavailable"


class Turn(models.Model):
    """One agent acting on one card. At most one active turn per card, enforced by the database."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="turns")
    card = models.ForeignKey("boards.Card", on_delete=models.CASCADE, related_name="turns")
    number = models.PositiveIntegerField(help_text="The card's turn count within the run, from 1.")
    seat = models.CharField(max_length=80)
    role = models.CharField(max_length=80)
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=20)
    model_profile = models.ForeignKey(
        ModelProfile, null=True, blank=True, on_delete=models.SET_NULL, related_name="turns"
    )
    purpose = models.CharField(max_length=10, default="work", help_text="work or review")
    status = models.CharField(max_length=20, choices=TurnStatus.choices, default=TurnStatus.QUEUED)
    outcome = models.TextField(blank=True, max_length=20_000)
    failure = models.CharField(max_length=40, choices=TurnFailure.choices, default=TurnFailure.NONE, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(default=timezone.now, help_text="When the turn last entered the queue.")
    messages = models.JSONField(default=list, blank=True)
    raw_answer = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    native_calls = models.JSONField(default=list, blank=True)
    answer_recorded_at = models.DateTimeField(
        null=True, blank=True, help_text="When the model's whole answer was stored; a re-run attempt reuses it."
    )
    tool_calls = models.JSONField(
        default=list, blank=True, help_text="Each call's record, stored as soon as it is decided or executed."
    )
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    commit_sha = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["card"],
                condition=models.Q(status__in=["queued", "running"]),
                name="turn_one_active_per_card",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=[s.value for s in TurnStatus]), name="turn_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "lease_expires_at"])]

    def __str__(self) -> str:
        return f"turn {self.pk} ({self.seat} on card {self.card_id}, {self.status})"


class TurnStep(models.Model):
    """One model call of a turn and what its tool calls did, stored as it completes so that a turn
    cut off resumes at its next step without asking the model again or repeating a call."""

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="steps")
    number = models.PositiveIntegerField(help_text="The step's number within the turn, from 1.")
    request_tokens = models.PositiveIntegerField(default=0, help_text="Estimated size of the prompt sent.")
    request_messages = models.PositiveIntegerField(default=0)
    shortened = models.PositiveIntegerField(default=0, help_text="Messages shortened to fit the context.")
    schema_shape = models.CharField(max_length=20, blank=True, help_text="Constrained output used, if any.")
    raw_answer = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    native_calls = models.JSONField(default=list, blank=True)
    answer_recorded_at = models.DateTimeField(null=True, blank=True)
    calls = models.JSONField(default=list, blank=True, help_text="Each call's record with its result or refusal.")
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    model_ms = models.PositiveIntegerField(null=True, blank=True)
    engine_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time spent outside the model.")
    outcome = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["turn_id", "number"]
        constraints = [models.UniqueConstraint(fields=["turn", "number"], name="turn_step_unique_number")]

    def __str__(self) -> str:
        return f"step {self.number} of turn {self.turn_id}"


class EpicAgentSettings(models.Model):
    """Per-epic choices of the agent engine: the model its turns use unless a run or seat says otherwise."""

    epic = models.OneToOneField("boards.Epic", on_delete=models.CASCADE, related_name="agent_settings")
    model_profile = models.ForeignKey(ModelProfile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"agent settings of epic {self.epic_id}"


class RunEvent(models.Model):
    """Every visible happening of a run, numbered without gaps per run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=40)
    turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    card_id = models.BigIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="run_event_unique_seq")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.kind}"


class SeatNote(models.Model):
    """A note from one seat to another (or to all) about a card, shown in later prompts."""

    card = models.ForeignKey("boards.Card", on_delete=models.CASCADE, related_name="seat_notes")
    from_seat = models.CharField(max_length=80)
    to_seat = models.CharField(max_length=80, help_text="A seat name, or 'all'.")
    body = models.TextField(max_length=20_000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["card_id", "id"]

    def __str__(self) -> str:
        return f"note on card {self.card_id} from {self.from_seat} to {self.to_seat}"


# Tools whose calls wait for a person's approval unless the project says otherwise.
DEFAULT_APPROVAL_TOOLS = ("run_command", "delete_file")


def default_approval_tools() -> list[str]:
    return list(DEFAULT_APPROVAL_TOOLS)


def approval_tools_for(project_id: int) -> frozenset[str]:
    """The tools of the project whose calls need a person's approval."""
    chosen = ProjectAgentSettings.objects.filter(project_id=project_id).values_list("approval_tools", flat=True).first()
    return frozenset(DEFAULT_APPROVAL_TOOLS if chosen is None else chosen)


class ProjectAgentSettings(models.Model):
    """Per-project choices of the agent engine."""

    project = models.OneToOneField("boards.Project", on_delete=models.CASCADE, related_name="agent_settings")
    default_model_profile = models.ForeignKey(
        ModelProfile,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Used when a run names no profile. Empty: Ollama when it answers, else the scripted demo.",
    )
    approval_tools = models.JSONField(
        default=default_approval_tools,
        blank=True,
        help_text="Tools whose calls wait for a person's approval before they run.",
    )

    def __str__(self) -> str:
        return f"agent settings of {self.project_id}"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELED = "canceled", "Canceled"


class ToolApproval(models.Model):
    """A tool call that waits for a person: the turn stopped before it ran, at this step and call."""

    project = models.ForeignKey("boards.Project", on_delete=models.CASCADE, related_name="tool_approvals")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="approvals")
    card = models.ForeignKey("boards.Card", on_delete=models.CASCADE, related_name="tool_approvals")
    step_number = models.PositiveIntegerField()
    call_index = models.PositiveIntegerField(help_text="The call's 0-based position in the step's answer.")
    tool = models.CharField(max_length=80)
    arguments = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, max_length=5_000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["turn", "step_number", "call_index"], name="tool_approval_unique_call"),
        ]
        indexes = [models.Index(fields=["card", "status"])]

    def __str__(self) -> str:
        return f"approval of {self.tool} in turn {self.turn_id} step {self.step_number} ({self.status})"


class PlanStatus(models.TextChoices):
    DRAFTING = "drafting", "Drafting"  # the architect's planning turn is under way
    DRAFT = "draft", "Draft"  # a plan to edit, accept or discard
    ACCEPTED = "accepted", "Accepted"
    DISCARDED = "discarded", "Discarded"
    FAILED = "failed", "Failed"


class EpicPlan(models.Model):
    """The architect's plan for an epic's cards: proposed by a planning turn, edited by a person, and
    turned into cards (through boards' import service) only when accepted."""

    project = models.ForeignKey("boards.Project", on_delete=models.CASCADE, related_name="plans")
    epic = models.ForeignKey("boards.Epic", on_delete=models.CASCADE, related_name="plans")
    status = models.CharField(max_length=12, choices=PlanStatus.choices, default=PlanStatus.DRAFTING)
    replan = models.BooleanField(default=False, help_text="Asked for while the epic already had cards.")
    seat = models.CharField(max_length=80, blank=True, help_text="The architect seat that planned.")
    model_profile = models.ForeignKey(ModelProfile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    proposed = models.JSONField(default=dict, blank=True, help_text="The document the architect proposed.")
    document = models.JSONField(default=dict, blank=True, help_text="The document as edited; accepted as it is.")
    problems = models.JSONField(default=list, blank=True, help_text="[{path, message}] of the current document.")
    warnings = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, max_length=20_000, help_text="Why the planning turn failed.")
    steps = models.JSONField(default=list, blank=True, help_text="The planning turn's steps: answer, calls, tokens.")
    messages = models.JSONField(default=list, blank=True, help_text="The planning turn's first prompt.")
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cards_created = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    drafted_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["epic", "status"], name="plan_epic_status")]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=PlanStatus.values), name="plan_status_valid"),
            models.UniqueConstraint(
                fields=["epic"], condition=models.Q(status="drafting"), name="plan_one_drafting_per_epic"
            ),
        ]

    def __str__(self) -> str:
        return f"plan {self.pk} of epic {self.epic_id} ({self.status})"


from agents.gitea.models import ForgeEventKey, GiteaLink, PullRequestLink, WebhookDelivery  # noqa: E402, F401
