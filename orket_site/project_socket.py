"""The base of every WebSocket consumer that reads one project (agents.consumers, sandboxes.consumers).
Every consumer checks the session user and project membership on connect, and again whenever that
user's access may have changed (orket_site.socket_access) and on a timer, closing when they no longer
allow it; the Origin header is checked for all of them by orket_site.origin_middleware."""

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

from orket_site import subscribers
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
        subscribers.websocket_closed(self.channel_name)
        self.closing = True
        await self.leave_all()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The streams are one-way; anything a client sends is ignored.
        return


def after_from(query_string: bytes) -> int:
    """The `after` sequence number of a socket's query string (0 when absent or not a number)."""
    values = parse_qs(query_string.decode("latin-1")).get("after", ["0"])
    try:
        return max(0, int(values[0]))
    except ValueError:
        return 0
