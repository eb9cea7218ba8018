"""Finding the real services the tests need (PostgreSQL, Redis), or saying plainly why they are absent.

With ORKET_REQUIRE_SERVICES=1 a missing service fails the test instead of skipping it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def services_required() -> bool:
    return os.environ.get("ORKET_REQUIRE_SERVICES", "") == "1"


def port_open(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1.0):
            return True
    except OSError:
        return False


def missing_service(reason: str) -> None:
    if services_required():
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def postgres_url() -> str:
    url = os.environ.get("ORKET_TEST_DATABASE_URL") or DEFAULT_POSTGRES_URL
    if not port_open(url, 5432):
        missing_service(f"PostgreSQL is not answering at {url}")
    return url


def redis_url() -> str:
    url = os.environ.get("ORKET_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    if not port_open(url, 6379):
        missing_service(f"Redis is not answering at {url}")
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fresh_postgres_database(prefix: str = "orket_bench") -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of DEFAULT_POSTGRES_URL; its URL, dropped at the end."""
    import psycopg

    server = DEFAULT_POSTGRES_URL.rsplit("/", 1)[0]
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
