"""Waiting until a page has nothing left to do, for checks that something did NOT happen (a script
that must not run): the page's requests have all ended and the tasks their ends queued (load and
error handlers) have run, so a handler that was going to fire has fired."""

from __future__ import annotations

import asyncio
from typing import Any

# Two animation frames and a task: what the page had started (image loads, timers at 0) has been
# issued, and handlers queued by what already ended have run.
NEXT_TASKS_JS = """
() => new Promise((resolve) =>
  requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(resolve, 0))))
"""


class RequestsInFlight:
    """The requests of one page that have started and not yet finished or failed."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self._open: set[Any] = set()
        page.on("request", self._started)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    def _started(self, request: Any) -> None:
        self._open.add(request)

    def _ended(self, request: Any) -> None:
        self._open.discard(request)

    async def quiet(self, *, timeout: float = 10.0) -> None:
        """Until every request the page has started has ended, then its handlers have run; TimeoutError
        after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self.page.evaluate(NEXT_TASKS_JS)
        while self._open:
            if loop.time() > deadline:
                raise TimeoutError(f"requests still open after {timeout:g} s: {[r.url for r in self._open]}")
            await asyncio.sleep(0.02)
        await self.page.evaluate(NEXT_TASKS_JS)
