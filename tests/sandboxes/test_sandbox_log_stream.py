"""A running sandbox's output reaches a socket client live: an app prints a numbered line every 100 ms;
the client sees each within a second of its printing, drops, reconnects with its last sequence
number, and ends with every line the app printed exactly once, in order. On the local backend
(bubblewrap when installed) and on Docker when an engine answers; through the real ASGI application
and the real follower thread; SQLite and the in-memory layer by default, PostgreSQL and Redis
(channels_redis) with ORKET_TEST_DATABASE_URL and ORKET_TEST_REDIS_URL."""

from __future__ import annotations

import asyncio
import re
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from boards.models import Membership, Project, ProjectRole
from orket_site.asgi import application
from sandboxes import log_follow, selectors, services
from sandboxes.models import LogStream, Sandbox, SandboxStatus
from tests.sandboxes.docker_engine import DockerEngine, docker_engine  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TICKER = textwrap.dedent(
    """
    import http.server, os, threading, time

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format, *args):
            pass

    def tick():
        number = 0
        while True:
            number += 1
            print(f"tick {number} at {time.time():.3f}", flush=True)
            time.sleep(0.1)

    threading.Thread(target=tick, daemon=True).start()
    http.server.HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler).serve_forever()
    """
)
TICK = re.compile(r"tick (\d+) at (\d+\.\d+)")
LIVE_WITHIN = 1.0


def write_ticker(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text("")
    (folder / "app.py").write_text(TICKER)
    for path in (folder, folder / "requirements.txt", folder / "app.py"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


@pytest.fixture(params=["local", "docker"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, settings, tmp_path: Path) -> str:
    settings.DATA_DIR = tmp_path / "data"
    monkeypatch.setenv("ORKET_SANDBOX_HEALTH_TIMEOUT", "60")
    if request.param == "docker":
        engine: DockerEngine = request.getfixturevalue("docker_engine")
        monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "docker")
        monkeypatch.setenv("ORKET_SANDBOX_NETWORK", "host")  # it must answer its health check on 127.0.0.1
        monkeypatch.setenv("ORKET_SANDBOX_IMAGE_PYTHON", engine.python_image)
    else:
        monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    return str(request.param)


@database_sync_to_async
def start_ticker(tmp_path: Path, django_user_model) -> tuple[Sandbox, int, bytes]:
    project = Project.objects.create(name="Ticks", slug="ticks")
    member = django_user_model.objects.create_user("member", password="pw long enough 1")
    Membership.objects.create(project=project, user=member, role=ProjectRole.MEMBER)
    client = Client()
    client.force_login(member)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    sandbox = services.sandbox_create(project=project, workspace=write_ticker(tmp_path / "ws"))
    stream_id = selectors.sandbox_log_stream_id(sandbox.pk)
    assert stream_id is not None
    sandbox = services.sandbox_provision(sandbox_id=sandbox.pk)
    assert sandbox.status == SandboxStatus.RUNNING, sandbox.last_error
    return sandbox, stream_id, cookie


async def connect(stream_id: int, cookie: bytes, after: int) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000"), (b"cookie", cookie)]
    communicator = WebsocketCommunicator(application, f"/ws/logs/{stream_id}/?after={after}", headers=headers)
    connected, code = await communicator.connect(timeout=10)
    assert connected, code
    hello = await communicator.receive_json_from(timeout=10)
    assert hello["type"] == "hello" and hello["stream"] == stream_id
    return communicator


async def collect(communicator: WebsocketCommunicator, received: list[dict[str, Any]], *, seconds: float) -> None:
    """Frames for `seconds`, each stamped with when it arrived. (A receive that times out would end
    the application, so this waits with receive_nothing, which leaves it running.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await communicator.receive_nothing(timeout=0.02, interval=0.005):
            continue
        frame = await communicator.receive_json_from(timeout=5)
        if "seq" in frame:
            frame["received_at"] = time.time()
            received.append(frame)


async def test_service_lines_arrive_live_and_exactly_once_across_a_reconnect(
    backend: str, tmp_path: Path, django_user_model
) -> None:
    sandbox, stream_id, cookie = await start_ticker(tmp_path, django_user_model)
    received: list[dict[str, Any]] = []
    live_windows: list[tuple[float, float]] = []
    try:
        for _ in range(2):
            after = received[-1]["seq"] if received else 0
            communicator = await connect(stream_id, cookie, after)
            opened = time.time()
            await collect(communicator, received, seconds=4.0)
            live_windows.append((opened + 0.5, time.time()))  # lines printed in here came live
            await communicator.disconnect()
            await asyncio.sleep(1.0)  # the app goes on printing while no one listens
    finally:
        await sync_to_async(services.sandbox_stop)(
            sandbox=await database_sync_to_async(Sandbox.objects.get)(pk=sandbox.pk)
        )
        await sync_to_async(services.sandbox_halt)(sandbox_id=sandbox.pk)
        await sync_to_async(log_follow.wait_until_stopped)(sandbox.pk, 20)
    stream = await database_sync_to_async(LogStream.objects.get)(pk=stream_id)
    communicator = await connect(stream_id, cookie, received[-1]["seq"])
    while not received or received[-1]["seq"] < stream.last_seq:
        before = len(received)
        await collect(communicator, received, seconds=2.0)
        assert len(received) > before, "the last lines never arrived"
    await communicator.disconnect()
    await sync_to_async(services.sandbox_teardown)(sandbox_id=sandbox.pk)

    assert [frame["seq"] for frame in received] == list(range(1, stream.last_seq + 1))  # nothing lost or twice
    ticks = [(int(match[1]), float(match[2]), frame) for frame in received if (match := TICK.search(frame["text"]))]
    numbers = [number for number, _, _ in ticks]
    assert numbers == list(range(1, len(numbers) + 1)), "a tick is missing, repeated or out of order"
    assert len(numbers) >= 50  # about 8 s of ticks
    if backend == "local":
        printed = (services.state_dir(sandbox) / "app.log").read_text().count("tick ")
        assert len(numbers) == printed  # every line the app wrote to its log, and no more
    late = [
        (number, round(frame["received_at"] - printed_at, 3))
        for number, printed_at, frame in ticks
        if any(start <= printed_at <= end - LIVE_WITHIN for start, end in live_windows)
        and frame["received_at"] - printed_at > LIVE_WITHIN
    ]
    checked = sum(1 for _, printed_at, _ in ticks if any(s <= printed_at <= e - LIVE_WITHIN for s, e in live_windows))
    assert checked >= 30 and late == []
    delays = sorted(frame["received_at"] - printed_at for _, printed_at, frame in ticks
                    if any(s <= printed_at <= e - LIVE_WITHIN for s, e in live_windows))  # fmt: skip
    print(f"{backend}: {checked} live lines, delay median {delays[len(delays) // 2]:.3f} s, max {delays[-1]:.3f} s")


def _wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_follower_restart_resumes_where_it_stopped_and_a_rival_stores_nothing(
    monkeypatch: pytest.MonkeyPatch, settings, tmp_path: Path
) -> None:
    import threading

    settings.DATA_DIR = tmp_path / "data"
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    project = Project.objects.create(name="Ticks", slug="ticks")
    sandbox = services.sandbox_create(project=project, workspace=write_ticker(tmp_path / "ws"))
    stream_id = selectors.sandbox_log_stream_id(sandbox.pk)
    try:
        assert services.sandbox_provision(sandbox_id=sandbox.pk).status == SandboxStatus.RUNNING

        def stored() -> int:
            return LogStream.objects.get(pk=stream_id).last_seq

        _wait_for(lambda: stored() >= 10, "the follower stored nothing")
        log_follow.sandboxes_logs_unfollow()  # as a worker shutting down
        assert not log_follow.following(sandbox.pk)
        assert LogStream.objects.get(pk=stream_id).follower == ""  # the lease is given back
        paused_at = stored()
        time.sleep(1.0)  # the app prints on; nobody stores
        assert stored() == paused_at

        assert log_follow.sandbox_logs_follow(sandbox_id=sandbox.pk)  # a new worker takes over
        assert not log_follow.sandbox_logs_follow(sandbox_id=sandbox.pk)  # one per sandbox in a process
        _wait_for(lambda: LogStream.objects.get(pk=stream_id).follower != "", "the new follower took no lease")
        rival = threading.Thread(target=log_follow._follow_safely, args=(sandbox.pk, threading.Event()))
        rival.start()  # another process's follower: the lease is held, so it leaves at once
        rival.join(10)
        assert not rival.is_alive()
        _wait_for(lambda: stored() >= paused_at + 20, "the new follower stored nothing")
    finally:
        services.sandbox_stop(sandbox=Sandbox.objects.get(pk=sandbox.pk))
        services.sandbox_halt(sandbox_id=sandbox.pk)
        log_follow.wait_until_stopped(sandbox.pk, 20)
    texts = [line.text for line in LogStream.objects.get(pk=stream_id).lines.order_by("seq")]
    numbers = [int(match[1]) for text in texts if (match := TICK.search(text))]
    assert numbers == list(range(1, len(numbers) + 1))  # nothing lost in the pause, nothing twice
    assert len(numbers) == (services.state_dir(sandbox) / "app.log").read_text().count("tick ")
    services.sandbox_teardown(sandbox_id=sandbox.pk)
    assert LogStream.objects.get(pk=stream_id).closed_at is not None
