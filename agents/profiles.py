"""Model profiles managed by staff: create, change, delete, test the connection, and choose them for a
project's runs and a team's seats.

Writes are services (one transaction, an admin log entry as the audit row); the connection test
talks to the model server outside any transaction, through the outbound policy of the profile's own
connection, and only its result (the schema shape found) is written afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.core.exceptions import ValidationError
from django.db import transaction

from agents import outbound
from agents.errors import AgentsError
from agents.models import EpicAgentSettings, ModelProfile, ProjectAgentSettings, Run, Seat
from agents.providers import (
    ChatRequest,
    Finished,
    ProviderError,
    RetryPolicy,
    SchemaUnsupported,
    provider_for,
    stream_with_retry,
)
from agents.providers.openai import chat_url
from boards.models import Project

logger = logging.getLogger(__name__)

# Fields a person sets; the schema shape and characters per token are found out by Orket.
EDITABLE_FIELDS = (
    "name",
    "provider",
    "base_url",
    "model",
    "temperature",
    "seed",
    "context_size",
    "max_tokens",
    "timeout_seconds",
    "retry_attempts",
    "retry_base_delay",
    "tokens_per_second",
    "supports_native_tools",
    "supports_json_schema",
    "max_steps",
    "turn_seconds",
    "api_key_env",
)
SCHEMA_UNSUPPORTED = "unsupported"
TEST_TIMEOUT_SECONDS = 10.0
MAX_LISTED_MODELS = 200
PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}


class ProfileInvalid(AgentsError):
    status = 400
    code = "invalid_profile"


class ProfileInUse(AgentsError):
    status = 409
    code = "profile_in_use"


def _audit(user: Any, profile: ModelProfile, flag: int, message: str) -> None:
    if user is None or not getattr(user, "pk", None):
        return
    LogEntry.objects.log_actions(user.pk, [profile], flag, change_message=message, single_object=True)


def _save_checked(profile: ModelProfile) -> None:
    try:
        profile.full_clean()
    except ValidationError as error:
        problems = [
            {"path": name, "message": message} for name, messages in error.message_dict.items() for message in messages
        ]
        raise ProfileInvalid("The model profile has problems; nothing was saved.", problems=problems) from error
    profile.save()


@transaction.atomic
def profile_create(*, user: Any, values: dict[str, Any]) -> ModelProfile:
    profile = ModelProfile(**{key: value for key, value in values.items() if key in EDITABLE_FIELDS})
    _save_checked(profile)
    _audit(user, profile, ADDITION, "Created through Orket's profile pages or API.")
    return profile


@transaction.atomic
def profile_update(*, user: Any, profile: ModelProfile, values: dict[str, Any]) -> ModelProfile:
    locked = ModelProfile.objects.select_for_update().get(pk=profile.pk)
    changed = [key for key in EDITABLE_FIELDS if key in values and getattr(locked, key) != values[key]]
    for key in changed:
        setattr(locked, key, values[key])
    if {"provider", "base_url", "model"} & set(changed):
        locked.json_schema_shape = ""  # another server or model: found out again
    _save_checked(locked)
    if changed:
        _audit(user, locked, CHANGE, "Changed " + ", ".join(changed) + ".")
    return locked


def profile_uses(profile: ModelProfile) -> list[str]:
    """What still names the profile, in words; empty when it may be deleted."""
    uses = []
    runs = Run.objects.filter(model_profile=profile).count()
    if runs:
        uses.append(f"{runs} run(s)")
    seats = list(Seat.objects.filter(model_profile=profile).select_related("team"))
    if seats:
        uses.append("seat(s) " + ", ".join(str(seat) for seat in seats))
    projects = ProjectAgentSettings.objects.filter(default_model_profile=profile).count()
    if projects:
        uses.append(f"the default of {projects} project(s)")
    epics = EpicAgentSettings.objects.filter(model_profile=profile).count()
    if epics:
        uses.append(f"{epics} epic(s)")
    return uses


@transaction.atomic
def profile_delete(*, user: Any, profile: ModelProfile) -> None:
    locked = ModelProfile.objects.select_for_update().get(pk=profile.pk)
    uses = profile_uses(locked)
    if uses:
        raise ProfileInUse(
            f"Model profile {locked.name!r} is in use by {'; '.join(uses)}; nothing was deleted.", uses=uses
        )
    _audit(user, locked, DELETION, "Deleted through Orket's profile pages or API.")
    locked.delete()


@transaction.atomic
def project_default_profile_set(*, user: Any, project: Project, profile: ModelProfile | None) -> ProjectAgentSettings:
    settings_row, _ = ProjectAgentSettings.objects.select_for_update().get_or_create(project=project)
    settings_row.default_model_profile = profile
    settings_row.save(update_fields=["default_model_profile"])
    if profile is not None:
        _audit(user, profile, CHANGE, f"Made the default of project {project.pk} ({project.name}).")
    return settings_row


@transaction.atomic
def seat_profile_set(*, user: Any, seat: Seat, profile: ModelProfile | None) -> Seat:
    locked = Seat.objects.select_for_update().get(pk=seat.pk)
    locked.model_profile = profile
    locked.save(update_fields=["model_profile"])
    if profile is not None:
        _audit(user, profile, CHANGE, f"Chosen for seat {locked.team.name}/{locked.name}.")
    return locked


@dataclass
class ConnectionReport:
    """What a connection test found. `reachable` False says why in `detail`; `refused` marks an
    address the outbound policy does not allow."""

    reachable: bool
    models: list[str] = field(default_factory=list)
    model_listed: bool | None = None
    schema_shape: str = ""
    detail: str = ""
    refused: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def models_url(profile: ModelProfile) -> str:
    if profile.provider == ModelProfile.Provider.OLLAMA:
        return profile.base_url.rstrip("/") + "/api/tags"
    return chat_url(profile.base_url).removesuffix("/chat/completions") + "/models"


def _auth_headers(profile: ModelProfile) -> dict[str, str]:
    key = profile.api_key()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _model_names(profile: ModelProfile, document: Any) -> list[str]:
    if not isinstance(document, dict):
        return []
    if profile.provider == ModelProfile.Provider.OLLAMA:
        rows, key = document.get("models"), "name"
    else:
        rows, key = document.get("data"), "id"
    if not isinstance(rows, list):
        return []
    names = [str(row.get(key)) for row in rows if isinstance(row, dict) and row.get(key)]
    return sorted(names)[:MAX_LISTED_MODELS]


def _failure(error: BaseException) -> ConnectionReport:
    refused = outbound.refused_cause(error)
    if refused is not None:
        return ConnectionReport(reachable=False, refused=True, detail=refused.message)
    return ConnectionReport(reachable=False, detail=f"The server could not be reached: {error}")


def list_models(profile: ModelProfile, timeout: float = TEST_TIMEOUT_SECONDS) -> ConnectionReport:
    """The models the server offers (Ollama's /api/tags, OpenAI-style /v1/models)."""
    try:
        with httpx.Client(timeout=timeout, **profile.connection_options()) as client:
            response = client.get(models_url(profile), headers=_auth_headers(profile))
    except httpx.HTTPError as error:
        return _failure(error)
    if response.status_code >= 400:
        return ConnectionReport(
            reachable=response.status_code < 500,
            detail=f"The model list answered HTTP {response.status_code}: {response.text[:300]}",
        )
    try:
        names = _model_names(profile, response.json())
    except ValueError:
        return ConnectionReport(reachable=True, detail="The model list was not JSON.")
    return ConnectionReport(reachable=True, models=names, model_listed=profile.model in names)


def find_schema_shape(profile: ModelProfile, timeout: float = TEST_TIMEOUT_SECONDS) -> tuple[str, str]:
    """Ask for one tiny constrained answer the way a turn does (the providers try the shapes in
    order); the shape the server took, or "unsupported", and what went wrong otherwise."""
    request = ChatRequest(
        messages=[{"role": "user", "content": 'Answer with the JSON object {"ok": true}.'}],
        model=profile.model,
        base_url=profile.base_url,
        temperature=0.0,
        context_size=min(profile.context_size, 2048),
        max_tokens=32,
        timeout=min(profile.timeout_seconds, timeout),
        connect_timeout=min(5.0, timeout),
        response_schema=PROBE_SCHEMA,
        api_key=profile.api_key(),
    )
    provider = provider_for(profile.provider, **profile.connection_options())
    try:
        for event in stream_with_retry(provider, request, RetryPolicy(attempts=1, base_delay=0.0)):
            if isinstance(event, Finished):
                return str(event.metadata.get("schema_shape") or ""), ""
    except SchemaUnsupported as refused:
        return SCHEMA_UNSUPPORTED, str(refused)
    except ProviderError as error:
        return "", str(error)
    return "", "The server ended the answer without finishing it."


def profile_test(*, profile: ModelProfile) -> ConnectionReport:
    """Reach the profile's server, list its models and find the constrained-output shape it takes.
    Never raises for a server that is down or refused: the report says so. Called outside any
    transaction; the shape found is remembered on the profile afterwards."""
    if profile.provider == ModelProfile.Provider.SCRIPTED:
        return ConnectionReport(reachable=True, models=["scripted"], model_listed=True, detail="Scripted: no server.")
    report = list_models(profile)
    if not report.reachable:
        return report
    shape, problem = find_schema_shape(profile)
    report.schema_shape = shape
    if problem:
        report.detail = (report.detail + " " if report.detail else "") + f"Constrained output: {problem}"[:1000]
    if shape:
        ModelProfile.objects.filter(pk=profile.pk).update(json_schema_shape=shape)
    return report
