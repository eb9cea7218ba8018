"""`/ws/logs/{stream}/?after=N`: a log stream's lines after N from the database, then live ones, in
sequence, with no gap and no duplicate; the same protocol as the run stream (agents.consumers).

Frames: first {"type": "hello", "stream", "kind", "label", "last_seq", "trimmed_through", "closed"};
then one {"seq", "channel", "text", "at"} per line, seq 1, 2, 3... (a client resumes with the last seq
it rendered); {"type": "closed", "last_seq"} once the stream is finished and everything was sent.
Lines dropped by retention are skipped: the first line sent is then above `trimmed_through`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from django.db import DatabaseError

from boards.access import project_role_of
from orket_site import subscribers
from orket_site.project_socket import ProjectSocketConsumer, after_from, read_database
from sandboxes import selectors
from sandboxes.log_streams import line_frame, stream_group
from sandboxes.models import LogStream

logger = logging.getLogger(__name__)

RESYNC_SECONDS = 2.0
QUIET_SECONDS = 1.0  # no live frame for this long: the periodic check reads the database


class LogStreamConsumer(ProjectSocketConsumer):
    """Joins the stream's group before reading the database, so nothing published during the backfill
    is missed; live frames at or below what was sent are dropped, and one that skips ahead (the layer
    dropped some) is preceded by the missing ones read from the database. A periodic check catches up
    when the last frames of a burst were dropped, and notices the stream's end."""

    stream_id: int = 0
    last_sent: int = 0
    last_live_at: float = 0.0
    closed_sent: bool = False

    def role_now(self, user: Any) -> str | None:
        project_id = LogStream.objects.filter(pk=self.stream_id).values_list("project_id", flat=True).first()
        return None if project_id is None else project_role_of(user, project_id)

    async def connect(self) -> None:
        self.stream_id = int(self.scope["url_route"]["kwargs"]["stream_id"])
        if await self.authorize() is None:
            return
        self.last_sent = after_from(self.scope.get("query_string", b""))
        self._lock = asyncio.Lock()
        await self.join(stream_group(self.stream_id))
        await self.accept()
        subscribers.websocket_opened("logs", self.channel_name)
        self.watch_access()
        async with self._lock:
            state = await read_database(_stream_state)(self.stream_id)
            await self.send_json({"type": "hello", **state})
            await self._catch_up()
            if state["closed"]:
                await self._finish(state["last_seq"])
        self.keep(asyncio.ensure_future(self._resync_forever()))

    async def log_lines(self, event: dict[str, Any]) -> None:
        """Consecutive lines `first`, `first + 1`, ... as encoded frames."""
        first = event["first"]
        self.last_live_at = asyncio.get_running_loop().time()
        async with self._lock:
            if self.closing:
                return
            if first > self.last_sent + 1:
                await self._catch_up(until=first - 1)
            for offset, text in enumerate(event["texts"]):
                if first + offset == self.last_sent + 1:
                    await self.send(text_data=text)
                    self.last_sent = first + offset

    async def log_closed(self, event: dict[str, Any]) -> None:
        async with self._lock:
            await self._finish(event["last_seq"])

    async def _finish(self, last_seq: int) -> None:
        if last_seq > self.last_sent:
            await self._catch_up(until=last_seq)
        if not self.closed_sent and not self.closing:
            self.closed_sent = True
            await self.send_json({"type": "closed", "last_seq": last_seq})

    async def _catch_up(self, until: int | None = None) -> None:
        while not self.closing:
            frames = await read_database(_frames_after)(self.stream_id, self.last_sent, until)
            for frame in frames:
                await self.send(text_data=json.dumps(frame))
                self.last_sent = frame["seq"]
            if len(frames) < selectors.MAX_LOG_PAGE:
                return

    async def _resync_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed_sent:
            await asyncio.sleep(RESYNC_SECONDS)
            if loop.time() - self.last_live_at < QUIET_SECONDS:
                continue
            try:
                state = await read_database(_stream_state)(self.stream_id)
                if state["last_seq"] > self.last_sent or state["closed"]:
                    async with self._lock:
                        await self._catch_up()
                        if state["closed"]:
                            await self._finish(state["last_seq"])
            except DatabaseError:
                logger.warning("log stream %s: the periodic check could not read the database", self.stream_id)


def _stream_state(stream_id: int) -> dict[str, Any]:
    stream = LogStream.objects.get(pk=stream_id)
    return {
        "stream": stream.pk,
        "kind": stream.kind,
        "label": stream.label,
        "last_seq": stream.last_seq,
        "trimmed_through": stream.trimmed_through,
        "closed": stream.closed_at is not None,
    }


def _frames_after(stream_id: int, after: int, until: int | None) -> list[dict[str, Any]]:
    return [line_frame(line) for line in selectors.log_lines_after(stream_id, after, until=until)]
