"""Bounding how many HTTP requests one web process runs at once.

Django runs each request's view on a thread of its own. Under load, dozens of those threads share
the GIL with the event loop that carries every WebSocket, so the loop gets a sliver of the CPU:
handshakes miss daphne's connect timeout and live frames arrive seconds late. Requests beyond the
limit wait their turn on the event loop, where waiting costs nothing, and the loop keeps its share.

Some paths get a pool of slots of their own (`dedicated`, by path prefix): Gitea's webhook
deliveries must be answered in milliseconds, so they never queue behind slow page requests, and a
flood of deliveries never takes the slots pages need.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SHARED = ""  # the pool of every path without a dedicated one


class BoundedHttpConcurrency:
    """ASGI middleware: at most `limit` HTTP requests inside `app` at once, plus at most
    `dedicated[prefix]` requests whose path starts with that prefix; other scopes pass."""

    def __init__(self, app: ASGIApp, limit: int, dedicated: Mapping[str, int] | None = None) -> None:
        self.limits = {_SHARED: limit, **(dedicated or {})}
        for prefix, bound in self.limits.items():
            if not isinstance(bound, int) or bound < 1:
                where = f" of {prefix}" if prefix else ""
                raise ValueError(f"the HTTP concurrency limit{where} must be at least 1, not {bound}")
        self.app, self.limit = app, limit
        # Longest prefix first, so a more specific pool wins.
        self._prefixes = sorted((prefix for prefix in self.limits if prefix), key=len, reverse=True)
        # One set of semaphores per event loop: a semaphore belongs to the loop it first waited on,
        # and tests (and an embedded server restarted in one process) run the app on several loops.
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
            weakref.WeakKeyDictionary()
        )

    def _pool_of(self, scope: Scope) -> str:
        path = scope.get("path") or ""
        return next((prefix for prefix in self._prefixes if path.startswith(prefix)), _SHARED)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        pools = self._slots.get(loop)
        if pools is None:
            pools = self._slots.setdefault(
                loop, {prefix: asyncio.Semaphore(bound) for prefix, bound in self.limits.items()}
            )
        async with pools[self._pool_of(scope)]:
            await self.app(scope, receive, send)
