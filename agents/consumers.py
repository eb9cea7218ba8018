"""WebSocket consumers. Every consumer checks the session user and project membership on connect,
and again whenever that user's access may have changed (orket_site.socket_access) and on a timer,
closing when they no longer allow it; the Origin header is checked for all of them by
orket_site.origin_middleware."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from agents.models import Run, RunEvent
from agents.run_events import event_frame, run_group
from boards.access import project_role_of
from boards.events import project_group
from orket_site import metrics
from orket_site.socket_access import session_fingerprint, signed_in_user, user_group

logger = logging.getLogger(__name__)
T = TypeVar("T")


def read_database(func: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """Run a read-only database function on the thread pool. channels' default (thread-sensitive)
    puts every consumer of a process on one shared thread, so a few hundred subscribers queue
    behind each other and their handshakes time out; these reads need no thread affinity."""
    return database_sync_to_async(func, thread_sensitive=False)


# Close codes in the private range, so clients can tell "log in again" from "no such project".
CLOSE_NOT_AUTHENTICATED = 4401  # no session, or it ended: logout, expiry, password change
CLOSE_ACCESS_WITHDRAWN = 4403  # still signed in, but no longer allowed to read the project
CLOSE_NOT_FOUND = 4404


class ProjectSocketConsumer(AsyncJsonWebsocketConsumer):
    """A socket that reads one project for one signed-in user, for as long as that stays allowed.

    On connect it joins the user's group before reading the role, so a change announced in between
    is not missed, and remembers the session and password hash it was allowed with. An
    "access.changed" message, and a re-check every ORKET_SOCKET_RECHECK_SECONDS, read them again
    from the database: a session that no longer signs in the same user with the same password closes
    with 4401, a project the user may no longer read with 4403. A role that still reads (member to
    viewer) keeps the socket open.
    """

    user_id: int = 0
    session_key: str | None = None
    auth_hash: str = ""
    closing: bool = False

    def role_now(self, user: Any) -> str | None:
        """The user's role in the socket's project now (runs on a database thread)."""
        raise NotImplementedError

    async def authorize(self) -> str | None:
        """The user's role, or None after refusing the connection."""
        self._groups: list[str] = []
        self._tasks: list[asyncio.Future[None]] = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
            return None
        self.user_id = user.pk
        self.session_key = self.scope["session"].session_key
        self.auth_hash = user.get_session_auth_hash()
        await self.join(user_group(user.pk))
        role = await read_database(self.role_now)(user)
        if role is None:
            await self.leave_all()
            await self.close(code=CLOSE_NOT_FOUND)
        return role

    async def join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self._groups.append(group)

    def keep(self, task: asyncio.Future[None]) -> None:
        """A background task that ends with the socket."""
        self._tasks.append(task)

    def watch_access(self) -> None:
        self.keep(asyncio.ensure_future(self._recheck_forever()))

    async def access_changed(self, event: dict[str, Any]) -> None:
        ended = event.get("ended_session")
        if ended is None:
            await self.recheck_access()
        elif self.session_key and ended == session_fingerprint(self.session_key):
            await self.close_for(CLOSE_NOT_AUTHENTICATED)

    async def recheck_access(self) -> None:
        code = await read_database(self._access_verdict)()
        if code is not None:
            await self.close_for(code)

    def _access_verdict(self) -> int | None:
        user = signed_in_user(self.session_key, self.user_id, self.auth_hash)
        if user is None:
            return CLOSE_NOT_AUTHENTICATED
        return None if self.role_now(user) is not None else CLOSE_ACCESS_WITHDRAWN

    async def _recheck_forever(self) -> None:
        interval = settings.ORKET_SOCKET_RECHECK_SECONDS
        # A random first wait spreads the checks of sockets opened together (a server restart).
        await asyncio.sleep(random.uniform(0, interval))
        while not self.closing:
            try:
                await self.recheck_access()
            except DatabaseError:
                logger.warning("socket of user %s: the access re-check could not read the database", self.user_id)
            await asyncio.sleep(interval)

    async def close_for(self, code: int) -> None:
        """Stop sending at once (leave the groups, end the background tasks), then close."""
        if self.closing:
            return
        self.closing = True
        await self.leave_all()
        await self.close(code=code)

    async def leave_all(self) -> None:
        for group in getattr(self, "_groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        self._groups = []
        current = asyncio.current_task()
        for task in getattr(self, "_tasks", []):
            if task is not current:
                task.cancel()

    async def disconnect(self, code: int) -> None:
        metrics.websocket_closed(self.channel_name)
        self.closing = True
        await self.leave_all()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The streams are one-way; anything a client sends is ignored.
        return


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
        metrics.websocket_opened("board", self.channel_name)
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
        self.last_sent = _after_from(self.scope.get("query_string", b""))
        self._lock = asyncio.Lock()
        await self.join(run_group(self.run_id))
        await self.accept()
        metrics.websocket_opened("run", self.channel_name)
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


def _after_from(query_string: bytes) -> int:
    values = parse_qs(query_string.decode("latin-1")).get("after", ["0"])
    try:
        return max(0, int(values[0]))
    except ValueError:
        return 0


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
