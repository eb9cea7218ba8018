"""Bounding how many HTTP requests one web process runs at once.

Django runs each request's view on a thread of its own. Under load, dozens of those threads share
the GIL with the event loop that carries every WebSocket, so the loop gets a sliver of the CPU:
handshakes miss daphne's connect timeout and live frames arrive seconds late. Requests beyond the
limit wait their turn on the event loop, where waiting costs nothing, and the loop keeps its share.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BoundedHttpConcurrency:
    """ASGI middleware: at most `limit` HTTP requests inside `app` at once; other scopes pass."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the HTTP concurrency limit must be at least 1, not {limit}")
        self.app, self.limit = app, limit
        # One semaphore per event loop: a semaphore belongs to the loop it first waited on, and
        # tests (and an embedded server restarted in one process) run the app on several loops.
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots.setdefault(loop, asyncio.Semaphore(self.limit))
        async with slots:
            await self.app(scope, receive, send)
