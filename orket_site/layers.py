"""The in-memory channel layer of the embedded default, made safe to publish to from other threads.

Channels' InMemoryChannelLayer keeps asyncio queues that belong to the server's event loop. A Celery
worker thread publishing through `async_to_sync` runs on a loop of its own, so its put does not wake
the server's loop, and frames waited until something else woke it (hundreds of milliseconds). This
layer remembers the loop its consumers receive on and runs sends from any other loop on that one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    _home_loop: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel: str) -> Any:
        self._home_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def _on_home_loop(self, operation: Callable[[], Awaitable[None]]) -> None:
        home = self._home_loop
        if home is None or not home.is_running() or home is asyncio.get_running_loop():
            await operation()
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(operation(), home))

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._on_home_loop(lambda: InMemoryChannelLayer.send(self, channel, message))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._on_home_loop(lambda: InMemoryChannelLayer.group_send(self, group, message))
