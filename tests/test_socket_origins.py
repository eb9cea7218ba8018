"""WebSockets open only from the exact origins the site is served from: scheme, host and port.

The rule alone (no Django), then the real ASGI application through channels' communicator, then a
real `make run` server (daphne) reached by the Host a browser would send."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from boards.models import Membership, Project, ProjectRole
from orket_site.asgi import application
from orket_site.origins import Origin, origin_allowed, page_origin_of_socket, parse_origin
from tests.processes import PYTHON, app_env, login_over_http, started, wait_for_http
from tests.services import free_port

SITE = Origin("http", "127.0.0.1", 8000)

# ---------------------------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://127.0.0.1:8000", SITE),
        ("HTTP://LocalHost", Origin("http", "localhost", 80)),
        ("https://orket.example.com:443", Origin("https", "orket.example.com", 443)),
        ("http://[::1]:8000", Origin("http", "::1", 8000)),
        ("null", None),
        ("", None),
        ("file://", None),
        ("ws://127.0.0.1:8000", None),
        ("http://127.0.0.1:8000/path", None),
        ("http://user@127.0.0.1:8000", None),
        ("http://127.0.0.1:99999", None),
        ("http://127.0.0.1:8000?x=1", None),
    ],
)
def test_origins_parse_to_scheme_host_and_port(text: str, expected: Origin | None) -> None:
    assert parse_origin(text) == expected


def test_the_page_origin_of_a_socket_takes_http_for_ws_and_https_for_wss() -> None:
    assert page_origin_of_socket("ws", "127.0.0.1:8000") == SITE
    assert page_origin_of_socket("wss", "orket.example.com") == Origin("https", "orket.example.com", 443)
    assert page_origin_of_socket("ws", "") is None
    assert page_origin_of_socket("http", "127.0.0.1:8000") is None
    assert page_origin_of_socket("ws", "127.0.0.1:8000/evil") is None


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://127.0.0.1:8000/", True),
        ("http://127.0.0.1:9999", False),  # a sandbox app on another port of the same host
        ("https://127.0.0.1:8000", False),
        ("http://127.0.0.1", False),
        ("http://localhost:8000", False),
        ("null", False),
        (None, False),
        ("", False),
    ],
)
def test_only_the_exact_own_origin_is_allowed(origin: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, trusted=[], own=SITE) is allowed


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://orket.example.com", True),
        ("https://orket.example.com:443", True),
        ("http://orket.example.com", False),
        ("https://orket.example.com:8443", False),
        ("https://evil.example.com", False),
        ("https://team.example.org", True),
        ("https://example.org", True),
        ("https://team.example.org:8443", False),
        ("http://team.example.org", False),
        ("https://evilexample.org", False),
    ],
)
def test_trusted_origins_match_scheme_host_and_port(origin: str, allowed: bool) -> None:
    trusted = ["https://orket.example.com", "https://*.example.org", "not an origin"]
    assert origin_allowed(origin, trusted=trusted, own=None) is allowed


# ---------------------------------------------------------------------------------------------
# The real ASGI application
# ---------------------------------------------------------------------------------------------


@database_sync_to_async
def member_cookie(django_user_model) -> tuple[int, bytes]:
    project = Project.objects.create(name="Apollo", slug="apollo")
    user = django_user_model.objects.create_user("watcher", password="pw long enough 1")
    Membership.objects.create(project=project, user=user, role=ProjectRole.VIEWER)
    client = Client()
    client.force_login(user)
    return project.pk, f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def opens(
    project_id: int, cookie: bytes, origin: bytes | None, host: bytes = b"127.0.0.1:8000", **scope: str
) -> bool:
    headers = [(b"host", host), (b"cookie", cookie)]
    if origin is not None:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(application, f"/ws/projects/{project_id}/", headers=headers)
    communicator.scope.update(scope)
    connected, _ = await communicator.connect(timeout=5)
    if connected:
        assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
        await communicator.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
async def test_the_application_accepts_only_the_exact_origin_of_the_host(django_user_model) -> None:
    project_id, cookie = await member_cookie(django_user_model)
    assert await opens(project_id, cookie, b"http://127.0.0.1:8000")
    assert not await opens(project_id, cookie, b"http://127.0.0.1:9999")  # same host, other port
    assert not await opens(project_id, cookie, b"https://127.0.0.1:8000")  # other scheme
    assert not await opens(project_id, cookie, b"http://localhost:8000")  # other host
    assert not await opens(project_id, cookie, b"null")
    assert not await opens(project_id, cookie, None)
    # Over wss the page is https.
    assert await opens(project_id, cookie, b"https://127.0.0.1:8000", scheme="wss")
    assert not await opens(project_id, cookie, b"http://127.0.0.1:8000", scheme="wss")
    # A Host the site does not answer to gives no origin of its own.
    assert not await opens(project_id, cookie, b"http://evil.example:8000", host=b"evil.example:8000")


@pytest.mark.django_db(transaction=True)
async def test_production_accepts_only_the_trusted_origins(django_user_model, settings) -> None:
    settings.ORKET_SOCKET_ORIGIN_FROM_HOST = False
    settings.ALLOWED_HOSTS = ["orket.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://orket.example.com"]
    project_id, cookie = await member_cookie(django_user_model)
    host = b"orket.example.com"
    assert await opens(project_id, cookie, b"https://orket.example.com", host=host)
    # Behind the TLS proxy daphne sees ws, but the page origin must still be the https one.
    assert not await opens(project_id, cookie, b"http://orket.example.com", host=host)
    assert not await opens(project_id, cookie, b"https://orket.example.com:8443", host=host)
    assert not await opens(project_id, cookie, b"null", host=host)


# ---------------------------------------------------------------------------------------------
# A real server, as `make run` starts it
# ---------------------------------------------------------------------------------------------


def ws_opens(url: str, cookie: str, origin: str | None) -> bool:
    headers = {"Cookie": cookie} | ({"Origin": origin} if origin is not None else {})
    try:
        with ws_connect(url, additional_headers=headers, open_timeout=10, origin=None) as socket:
            return json.loads(socket.recv(timeout=10))["type"] == "hello"
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
        return False


@pytest.mark.slow
def test_the_embedded_server_refuses_other_ports_of_its_own_host(tmp_path: Path) -> None:
    port, other_port = free_port(), free_port()
    password = secrets.token_urlsafe(16)
    env = app_env(ORKET_DATA_DIR=str(tmp_path), ORKET_PORT=str(port), ORKET_ADMIN_PASSWORD=password)
    with started([PYTHON, "manage.py", "orket_run"], env, tmp_path / "server.log") as server:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/accounts/login/", process=server, timeout=60)
        session = login_over_http(base, "admin", password)
        project_id = session.get("/api/projects/").json()["results"][0]["id"]
        cookie = f"sessionid={session.cookies['sessionid']}"
        path = f"/ws/projects/{project_id}/"

        assert ws_opens(f"ws://127.0.0.1:{port}{path}", cookie, base)
        assert not ws_opens(f"ws://127.0.0.1:{port}{path}", cookie, f"http://127.0.0.1:{other_port}")
        assert not ws_opens(f"ws://127.0.0.1:{port}{path}", cookie, f"https://127.0.0.1:{port}")
        assert not ws_opens(f"ws://127.0.0.1:{port}{path}", cookie, "null")
        assert not ws_opens(f"ws://127.0.0.1:{port}{path}", cookie, None)
        # The Host header decides the own origin: the same server reached as localhost.
        assert ws_opens(f"ws://localhost:{port}{path}", cookie, f"http://localhost:{port}")
        assert not ws_opens(f"ws://localhost:{port}{path}", cookie, base)
