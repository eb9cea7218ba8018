"""Run events: every visible happening of a run, stored with a gapless per-run sequence number and
then sent to live subscribers through the channel layer (a fast path, never the record)."""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import F

from agents import phase_timer
from agents.models import Run, RunEvent

logger = logging.getLogger(__name__)

MAX_EVENT_TEXT = 64_000


def scrub(value: Any) -> Any:
    """Model output may hold NUL characters, which PostgreSQL cannot store in text or JSON: they
    become U+FFFD everywhere, so the record and the live stream always agree."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {scrub(key): scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    return value


def run_group(run_id: int) -> str:
    return f"run_{run_id}"


def event_frame(event: RunEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "kind": event.kind,
        "turn": event.turn_id,
        "card": event.card_id,
        "at": event.created_at.isoformat(),
        **event.data,
    }


def _publish(run_id: int, frames: list[dict[str, Any]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    # Encoded once here rather than once per subscriber; the layer copies a string cheaply.
    messages = [{"type": "run.event", "seq": frame["seq"], "text": json.dumps(frame)} for frame in frames]

    async def send_all() -> None:
        for message in messages:
            await layer.group_send(run_group(run_id), message)

    try:
        # One hop into the event loop for the whole batch: each hop costs milliseconds.
        with phase_timer.phase("publish"):
            async_to_sync(send_all)()
    except Exception:
        logger.warning("could not publish run events for run %s", run_id, exc_info=True)


def events_append(run_id: int, items: list[tuple[str, int | None, int | None, dict[str, Any]]]) -> list[RunEvent]:
    """Append events (kind, turn id, card id, data) with the next sequence numbers of the run.

    The run row's counter is bumped in the same transaction, so numbers never repeat or skip, even
    with several turns of one run writing at once. Subscribers hear about them after commit.
    """
    with phase_timer.phase("events"):
        return _events_write(run_id, items)


@transaction.atomic
def _events_write(run_id: int, items: list[tuple[str, int | None, int | None, dict[str, Any]]]) -> list[RunEvent]:
    if not items:
        return []
    Run.objects.filter(pk=run_id).update(last_seq=F("last_seq") + len(items))
    last = Run.objects.values_list("last_seq", flat=True).get(pk=run_id)
    first = last - len(items) + 1
    events = RunEvent.objects.bulk_create(
        [
            RunEvent(run_id=run_id, seq=first + offset, kind=kind, turn_id=turn_id, card_id=card_id, data=scrub(data))
            for offset, (kind, turn_id, card_id, data) in enumerate(items)
        ]
    )
    frames = [event_frame(event) for event in events]
    transaction.on_commit(lambda: _publish(run_id, frames))
    return events


def event_append(
    run_id: int, kind: str, *, turn_id: int | None = None, card_id: int | None = None, **data: Any
) -> RunEvent:
    return events_append(run_id, [(kind, turn_id, card_id, data)])[0]


class TextCoalescer:
    """Buffers streamed model text and writes it as one event per window (time or size), so the
    record equals what was streamed without one row per token."""

    def __init__(
        self,
        run_id: int,
        turn_id: int,
        card_id: int,
        kind: str = "text",
        window_seconds: float = 0.1,
        max_chars: int = 400,
    ) -> None:
        self.run_id, self.turn_id, self.card_id, self.kind = run_id, turn_id, card_id, kind
        self.window_seconds, self.max_chars = window_seconds, max_chars
        self._buffer: list[str] = []
        self._size = 0
        self._opened_at: float | None = None

    def add(self, text: str, now: float) -> None:
        if not text:
            return
        if self._opened_at is None:
            self._opened_at = now
        self._buffer.append(text)
        self._size += len(text)
        if self._size >= self.max_chars or now - self._opened_at >= self.window_seconds:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        text = "".join(self._buffer)
        self._buffer, self._size, self._opened_at = [], 0, None
        event_append(self.run_id, self.kind, turn_id=self.turn_id, card_id=self.card_id, text=text)
