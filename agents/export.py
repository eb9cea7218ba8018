"""Audit export of a run as JSON Lines: the run, every turn, every event, enough to replay it.

Line 1 is `{"type": "run", "format": 1, "run": {...}}`, then one `{"type": "turn", "turn": {...}}` per
turn in id order, then one `{"type": "event", "event": <frame>}` per event in sequence order, each
event exactly as the WebSocket stream and the events API give it. Rows are read in pages by key, so
memory stays constant however long the run was.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.core.serializers.json import DjangoJSONEncoder

from agents.models import Run, RunEvent, Turn, TurnStep
from agents.run_events import event_frame
from orket_site.untrusted_json import replace_lone_surrogates

EXPORT_FORMAT = 1
PAGE_SIZE = 200

TURN_FIELDS = (
    "id",
    "run_id",
    "card_id",
    "number",
    "seat",
    "role",
    "purpose",
    "model",
    "provider",
    "model_profile_id",
    "status",
    "outcome",
    "failure",
    "attempts",
    "lease_owner",
    "lease_expires_at",
    "heartbeat_at",
    "queued_at",
    "messages",
    "raw_answer",
    "reasoning",
    "native_calls",
    "answer_recorded_at",
    "tool_calls",
    "tokens_in",
    "tokens_out",
    "time_to_first_token_ms",
    "duration_ms",
    "commit_sha",
    "created_at",
    "started_at",
    "finished_at",
)
STEP_FIELDS = (
    "number",
    "request_tokens",
    "request_messages",
    "shortened",
    "schema_shape",
    "raw_answer",
    "reasoning",
    "native_calls",
    "answer_recorded_at",
    "calls",
    "tokens_in",
    "tokens_out",
    "time_to_first_token_ms",
    "model_ms",
    "engine_ms",
    "outcome",
    "created_at",
    "finished_at",
)


class _Encoder(DjangoJSONEncoder):
    """Datetimes in full (DjangoJSONEncoder would cut them to milliseconds), as event frames give them."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()
        return super().default(o)


_EXPORTED_NAMES = {"run_id": "run", "card_id": "card", "model_profile_id": "model_profile"}
# The one list of a turn's fields as the API and the export show them.
TURN_RECORD_NAMES = tuple(_EXPORTED_NAMES.get(name, name) for name in TURN_FIELDS)


def _line(item: dict[str, Any]) -> str:
    # Rows stored before lone surrogates were refused on input hold them; they cannot be UTF-8 encoded.
    return replace_lone_surrogates(json.dumps(item, cls=_Encoder, ensure_ascii=False, separators=(",", ":"))) + "\n"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def run_record(run: Run) -> dict[str, Any]:
    """Every field of the run, with its model profile, team, epic and project named."""
    profile, team, epic, project = run.model_profile, run.team, run.epic, run.project
    return {
        "id": run.pk,
        "status": run.status,
        "status_reason": run.status_reason,
        "cancel_requested": run.cancel_requested,
        "max_parallel": run.max_parallel,
        "turns_per_card": run.turns_per_card,
        "token_budget": run.token_budget,
        "card_token_budget": run.card_token_budget,
        "profile_is_override": run.profile_is_override,
        "tokens_in": run.tokens_in,
        "tokens_out": run.tokens_out,
        "last_seq": run.last_seq,
        "source_revision": run.source_revision,
        "card": run.card_id,
        "requested_by": run.requested_by.get_username() if run.requested_by else None,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "model_profile": {
            "id": profile.pk,
            "name": profile.name,
            "provider": profile.provider,
            "model": profile.model,
            "base_url": profile.base_url,
            "temperature": profile.temperature,
            "seed": profile.seed,
            "context_size": profile.context_size,
            "max_tokens": profile.max_tokens,
            "max_steps": profile.max_steps,
            "supports_json_schema": profile.supports_json_schema,
            "json_schema_shape": profile.json_schema_shape,
        },
        "team": {"id": team.pk, "name": team.name, "seats": list(team.seats.values_list("name", flat=True))},
        "epic": {"id": epic.pk, "name": epic.name},
        "project": {"id": project.pk, "name": project.name, "slug": project.slug},
    }


def turn_record(values: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A turn's row as exported: `run`, `card` and `model_profile` for the keys, every other field by
    its name, and its steps in order."""
    record = {_EXPORTED_NAMES.get(name, name): values[name] for name in TURN_FIELDS}
    record["steps"] = steps or []
    return record


def _turn_pages(run_id: int) -> Iterator[dict[str, Any]]:
    last_id = 0
    while True:
        page = list(Turn.objects.filter(run_id=run_id, id__gt=last_id).order_by("id").values(*TURN_FIELDS)[:PAGE_SIZE])
        steps: dict[int, list[dict[str, Any]]] = {}
        rows = TurnStep.objects.filter(turn_id__in=[turn["id"] for turn in page]).order_by("turn_id", "number")
        for step in rows.values("turn_id", *STEP_FIELDS):
            steps.setdefault(step.pop("turn_id"), []).append(step)
        for turn in page:
            turn["steps"] = steps.get(turn["id"], [])
        yield from page
        if len(page) < PAGE_SIZE:
            return
        last_id = page[-1]["id"]


def _event_pages(run_id: int, last_seq: int) -> Iterator[RunEvent]:
    after = 0
    while True:
        page = list(
            RunEvent.objects.filter(run_id=run_id, seq__gt=after, seq__lte=last_seq).order_by("seq")[:PAGE_SIZE]
        )
        yield from page
        if len(page) < PAGE_SIZE:
            return
        after = page[-1].seq


def export_lines(run: Run) -> Iterator[str]:
    """The run as JSON Lines, one string per line. Events are cut at the run's last_seq as read at the
    start, so an export of a live run is a consistent prefix of its record."""
    run = Run.objects.select_related("model_profile", "team", "epic", "project", "requested_by").get(pk=run.pk)
    yield _line({"type": "run", "format": EXPORT_FORMAT, "run": run_record(run)})
    for values in _turn_pages(run.pk):
        yield _line({"type": "turn", "turn": turn_record(values, values["steps"])})
    for event in _event_pages(run.pk, run.last_seq):
        yield _line({"type": "event", "event": event_frame(event)})


def export_chunks(run: Run, chunk_bytes: int = 64 * 1024) -> Iterator[bytes]:
    """The export lines joined into chunks of about `chunk_bytes`, for a streamed response."""
    buffer: list[bytes] = []
    size = 0
    for line in export_lines(run):
        data = line.encode()
        buffer.append(data)
        size += len(data)
        if size >= chunk_bytes:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


async def export_chunks_async(run: Run, chunk_bytes: int = 64 * 1024) -> AsyncIterator[bytes]:
    """The same chunks for an ASGI server, read one at a time on Django's sync thread.

    (Django would otherwise read a synchronous iterator to the end into memory before sending it.)
    """
    chunks = export_chunks(run, chunk_bytes)
    while True:
        chunk = await sync_to_async(next, thread_sensitive=True)(chunks, None)
        if chunk is None:
            return
        yield chunk
