"""Team configuration: roles, teams and their seats, dialects and model profiles.

API keys are never stored: a profile names the environment variable that holds its key.
"""

from __future__ import annotations

import os

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from agents.catalog import is_env_var_name, unknown_tools

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
    base_url = models.URLField(blank=True, max_length=500)
    model = models.CharField(max_length=200)
    temperature = models.FloatField(default=0.2, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    seed = models.BigIntegerField(null=True, blank=True)
    context_size = models.PositiveIntegerField(
        default=8192, validators=[MinValueValidator(512), MaxValueValidator(1_048_576)]
    )
    max_tokens = models.PositiveIntegerField(default=2048, validators=[MinValueValidator(1)])
    timeout_seconds = models.FloatField(default=120.0, validators=[MinValueValidator(1.0), MaxValueValidator(3600.0)])
    supports_native_tools = models.BooleanField(default=False)
    supports_json_schema = models.BooleanField(default=False)
    api_key_env = models.CharField(
        max_length=128,
        blank=True,
        validators=[validate_env_var_name],
        help_text="Name of the environment variable holding the API key; the key itself is never stored.",
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

    def api_key(self) -> str | None:
        """The key from the environment at call time, or None when none is configured or set."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or None


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
