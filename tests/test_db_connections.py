"""Requests served through the ASGI application do not leave database connections behind.

Django runs each request's view on a thread made for that request; with persistent connections
(CONN_MAX_AGE, as in production), each request used to leave one open connection on a dead
thread, until PostgreSQL refused new clients under load."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from django.db import connection, connections

from orket_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

REQUESTS = 40


def open_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


async def serve_requests(cookies: dict[str, str]) -> list[int]:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", cookies=cookies) as client:
        answers = await asyncio.gather(*(client.get("/api/projects/") for _ in range(REQUESTS)))
    return [answer.status_code for answer in answers]


def test_request_threads_close_their_connections(client: Any, django_user_model: Any, monkeypatch: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("counts server connections; SQLite has none")
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 60)  # as in production
    user = django_user_model.objects.create_user("reader", password="a long password 42")
    client.force_login(user)
    before = open_connections()
    statuses = asyncio.run(serve_requests({"sessionid": client.cookies["sessionid"].value}))
    assert statuses == [200] * REQUESTS
    assert open_connections() - before <= 2
