"""The web process runs at most ORKET_WEB_CONCURRENCY HTTP requests at once, and never holds back
WebSocket connections for it (orket_site.concurrency)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orket_site.asgi import application
from orket_site.concurrency import BoundedHttpConcurrency


class SlowApp:
    """An ASGI app that takes a while per request and remembers how many ran at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.scopes: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        self.scopes.append(scope["type"])
        await asyncio.sleep(0.05)
        self.running -= 1


async def nothing() -> dict[str, Any]:
    return {}


async def drop(message: Any) -> None:
    return None


def test_http_requests_beyond_the_limit_wait_and_all_are_served() -> None:
    inner = SlowApp()
    bounded = BoundedHttpConcurrency(inner, limit=3)

    async def flood() -> None:
        await asyncio.gather(*(bounded({"type": "http"}, nothing, drop) for _ in range(20)))

    asyncio.run(flood())
    assert inner.most == 3
    assert inner.scopes == ["http"] * 20


def test_websocket_scopes_are_not_held_back_by_busy_http_slots() -> None:
    inner = SlowApp()
    bounded = BoundedHttpConcurrency(inner, limit=1)

    async def mixed() -> None:
        calls = [bounded({"type": "http"}, nothing, drop) for _ in range(3)]
        calls += [bounded({"type": "websocket"}, nothing, drop) for _ in range(5)]
        await asyncio.gather(*calls)

    asyncio.run(mixed())
    assert inner.most == 6  # one HTTP request and all five sockets at once


def test_the_limit_works_on_each_event_loop_the_app_meets() -> None:
    inner = SlowApp()
    bounded = BoundedHttpConcurrency(inner, limit=2)

    async def four() -> None:
        await asyncio.gather(*(bounded({"type": "http"}, nothing, drop) for _ in range(4)))

    for _ in range(2):  # a new loop each time; a semaphore of the old one would fail here
        asyncio.run(asyncio.wait_for(four(), 5))
    assert inner.most == 2


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedHttpConcurrency(SlowApp(), limit=0)


def test_the_served_application_bounds_http(settings: Any) -> None:
    http = application.application_mapping["http"]
    assert isinstance(http, BoundedHttpConcurrency)
    assert http.limit == settings.ORKET_WEB_CONCURRENCY


class GatedApp:
    """An ASGI app that holds every request of one path until released."""

    def __init__(self, held_path: str) -> None:
        self.held_path = held_path
        self.release = asyncio.Event()
        self.served: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == self.held_path:
            await self.release.wait()
        self.served.append(scope["path"])


def test_a_dedicated_path_never_waits_behind_busy_shared_slots() -> None:
    inner = GatedApp("/page/")
    bounded = BoundedHttpConcurrency(inner, limit=2, dedicated={"/hooks/": 2})

    async def pages_busy_then_hooks() -> None:
        pages = [asyncio.ensure_future(bounded({"type": "http", "path": "/page/"}, nothing, drop)) for _ in range(4)]
        await asyncio.sleep(0)
        hooks = [bounded({"type": "http", "path": "/hooks/gitea/1/"}, nothing, drop) for _ in range(5)]
        await asyncio.wait_for(asyncio.gather(*hooks), 5)  # served while every page slot is held
        assert inner.served == ["/hooks/gitea/1/"] * 5
        inner.release.set()
        await asyncio.wait_for(asyncio.gather(*pages), 5)

    asyncio.run(pages_busy_then_hooks())
    assert inner.served.count("/page/") == 4


def test_a_dedicated_pool_has_its_own_bound() -> None:
    inner = SlowApp()
    bounded = BoundedHttpConcurrency(inner, limit=5, dedicated={"/hooks/": 2})

    async def flood() -> None:
        await asyncio.gather(*(bounded({"type": "http", "path": "/hooks/x/"}, nothing, drop) for _ in range(6)))

    asyncio.run(flood())
    assert inner.most == 2


def test_a_dedicated_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="of /hooks/ must be at least 1"):
        BoundedHttpConcurrency(SlowApp(), limit=2, dedicated={"/hooks/": 0})


def test_the_site_gives_webhooks_their_own_slots(settings: Any) -> None:
    bounded = application.application_mapping["http"]
    assert bounded.limits["/hooks/"] == settings.ORKET_WEBHOOK_CONCURRENCY
