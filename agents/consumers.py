"""WebSocket consumers of runs and boards. Every consumer checks the session user and project
membership on connect, and again whenever that user's access may have changed, through
orket_site.project_socket.ProjectSocketConsumer; the Origin header is checked for all of them by
orket_site.origin_middleware."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.db import DatabaseError

from agents.models import Run, RunEvent
from agents.run_events import event_frame, run_group
from boards.access import project_role_of
from boards.events import project_group
from orket_site import subscribers
from orket_site.project_socket import (  # noqa: F401 - re-exported: routing and tests import them from here
    CLOSE_ACCESS_WITHDRAWN,
    CLOSE_NOT_AUTHENTICATED,
    CLOSE_NOT_FOUND,
    ProjectSocketConsumer,
    after_from,
    read_database,
)

logger = logging.getLogger(__name__)


class ProjectBoardConsumer(ProjectSocketConsumer):
    """`/ws/projects/{id}/`: small card and run change events for one board, sent after commit.

    Clients re-fetch what changed; the stream carries no state of its own.
    """

    project_id: int = 0

    def role_now(self, user: Any) -> str | None:
        return project_role_of(user, self.project_id)

    async def connect(self) -> None:
        self.project_id = int(self.scope["url_route"]["kwargs"]["project_id"])
        role = await self.authorize()
        if role is None:
            return
        await self.join(project_group(self.project_id))
        await self.accept()
        subscribers.websocket_opened("board", self.channel_name)
        self.watch_access()
        await self.send_json({"type": "hello", "project": self.project_id, "role": role})

    async def card_event(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": event["kind"], "card": event["card"]})

    async def run_event(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": event["kind"], "run": event["run"]})


RESYNC_SECONDS = 2.0
QUIET_SECONDS = 1.0  # no live frame for this long: the periodic check reads the database
BACKFILL_PAGE = 500


class SharedLastSeq:
    """A run's last_seq as read at most once per `max_age` seconds per process: the subscribers of
    one run share the answer (and a read in flight) instead of each querying every check."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._known: dict[int, tuple[float, int]] = {}
        self._reading: dict[int, asyncio.Future[int]] = {}

    async def get(self, run_id: int) -> int:
        now = asyncio.get_running_loop().time()
        known = self._known.get(run_id)
        if known is not None and now - known[0] < self.max_age:
            return known[1]
        reading = self._reading.get(run_id)
        if reading is None or reading.get_loop() is not asyncio.get_running_loop():
            # (A read left behind by a loop that was closed, as between tests, is never awaited.)
            reading = asyncio.ensure_future(read_database(_run_last_seq)(run_id))
            self._reading[run_id] = reading
            reading.add_done_callback(lambda done: self._settle(run_id, now, done))
        return await asyncio.shield(reading)

    def _settle(self, run_id: int, read_at: float, done: asyncio.Future[int]) -> None:
        self._reading.pop(run_id, None)
        if not done.cancelled() and done.exception() is None:
            self._known[run_id] = (read_at, done.result())
            if len(self._known) > 10_000:  # runs long gone: forget the oldest answers
                for stale in sorted(self._known, key=lambda key: self._known[key][0])[:5_000]:
                    del self._known[stale]


_last_seqs = SharedLastSeq(max_age=RESYNC_SECONDS / 2)


class RunStreamConsumer(ProjectSocketConsumer):
    """`/ws/runs/{id}/?after=N`: every event after N from the database, then live ones, in sequence,
    with no gap and no duplicate.

    The consumer joins the run's group before reading the database, so nothing published during the
    backfill is missed; live frames at or below what was sent are dropped, and a frame that skips
    ahead (the channel layer dropped some) is preceded by the missing ones read from the database.
    A periodic check catches up when the last frames of a burst were dropped; it reads the database
    only when no live frame arrived for a while, because while frames flow the next one reveals a gap.
    """

    run_id: int = 0
    last_sent: int = 0
    last_live_at: float = 0.0

    def role_now(self, user: Any) -> str | None:
        return _run_role_of(user, self.run_id)

    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        if await self.authorize() is None:
            return
        self.last_sent = after_from(self.scope.get("query_string", b""))
        self._lock = asyncio.Lock()
        await self.join(run_group(self.run_id))
        await self.accept()
        subscribers.websocket_opened("run", self.channel_name)
        self.watch_access()
        async with self._lock:
            await self._catch_up()
        self.keep(asyncio.ensure_future(self._resync_forever()))

    async def run_event(self, event: dict[str, Any]) -> None:
        seq = event["seq"]
        self.last_live_at = asyncio.get_running_loop().time()
        async with self._lock:
            if seq <= self.last_sent or self.closing:
                return
            if seq > self.last_sent + 1:
                await self._catch_up(until=seq - 1)
            if seq == self.last_sent + 1:
                await self.send(text_data=event["text"])
                self.last_sent = seq

    async def _send_frame(self, frame: dict[str, Any]) -> None:
        await self.send_json(frame)
        self.last_sent = frame["seq"]

    async def _catch_up(self, until: int | None = None) -> None:
        while not self.closing:
            frames = await read_database(_frames_after)(self.run_id, self.last_sent, until)
            for frame in frames:
                await self._send_frame(frame)
            if len(frames) < BACKFILL_PAGE:
                return

    async def _resync_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            if loop.time() - self.last_live_at < QUIET_SECONDS:
                continue
            try:
                last_seq = await _last_seqs.get(self.run_id)
                if last_seq > self.last_sent:
                    async with self._lock:
                        await self._catch_up()
            except DatabaseError:
                # The database is down for now; this check is what catches up after dropped
                # frames, so it must outlive the error and try again.
                logger.warning("run %s stream: the periodic check could not read the database", self.run_id)


def _run_role_of(user: Any, run_id: int) -> str | None:
    project_id = Run.objects.filter(pk=run_id).values_list("project_id", flat=True).first()
    return None if project_id is None else project_role_of(user, project_id)


def _run_last_seq(run_id: int) -> int:
    return Run.objects.filter(pk=run_id).values_list("last_seq", flat=True).first() or 0


def _frames_after(run_id: int, after: int, until: int | None) -> list[dict[str, Any]]:
    events = RunEvent.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")
    if until is not None:
        events = events.filter(seq__lte=until)
    return [event_frame(event) for event in events[:BACKFILL_PAGE]]
