"""A verification run's output reaches a socket client while the run is still going: the code under
test writes a line to standard error, then takes half a second, for each scenario. Local backend,
real runner, real ASGI application."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection
from django.test import Client

from boards import services as board_services
from boards.actors import Actor
from boards.models import Membership, Project, ProjectRole
from orket_site.asgi import application
from sandboxes import verification
from sandboxes.models import LogStream, LogStreamKind, VerificationRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SLOW_CODE = (
    "import os, time\n"
    "def verify(value):\n"
    "    os.write(2, f'working on {value}\\n'.encode())\n"
    "    time.sleep(0.5)\n"
    "    return value\n"
)
FIXTURE = {
    "name": "slow",
    "scenarios": [{"id": f"s{index}", "input": index, "expected": index} for index in range(1, 5)],
}


@pytest.fixture(autouse=True)
def local_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    monkeypatch.setenv("ORKET_VERIFICATION_TIMEOUT", "30")


@database_sync_to_async
def queued_run(django_user_model) -> tuple[int, bytes]:
    project = Project.objects.create(name="Verify", slug="verify")
    maintainer = django_user_model.objects.create_user("maintainer", password="pw long enough 1")
    Membership.objects.create(project=project, user=maintainer, role=ProjectRole.MAINTAINER)
    actor = Actor.for_user(maintainer)
    epic = board_services.epic_create(project=project, actor=actor, name="Slow")
    card = board_services.card_create(epic=epic, actor=actor, title="Slow scenarios")
    verification.fixture_upload(card=card, raw=json.dumps(FIXTURE).encode(), name="slow.json", user=maintainer)
    root = verification.workspaces_root() / f"project-{project.pk}" / "cards" / str(card.pk)
    root.mkdir(parents=True, exist_ok=True)
    (root / "verify.py").write_text(SLOW_CODE)
    run = verification.verification_start(card=card, requested_by="test", user=maintainer)
    client = Client()
    client.force_login(maintainer)
    return run.pk, f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


def run_in_background(run_id: int) -> threading.Thread:
    def work() -> None:
        try:
            verification.verification_run(run_id=run_id)
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@database_sync_to_async
def stream_of(run_id: int) -> int | None:
    return (
        LogStream.objects.filter(verification_run_id=run_id, kind=LogStreamKind.VERIFICATION)
        .values_list("pk", flat=True)
        .first()
    )


@database_sync_to_async
def run_status(run_id: int) -> str:
    return VerificationRun.objects.get(pk=run_id).status


async def next_frame(communicator: WebsocketCommunicator, within: float = 20.0) -> dict[str, Any]:
    # receive_nothing leaves the application running, where a receive that timed out would end it.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await communicator.receive_nothing(timeout=0.05, interval=0.01):
        assert loop.time() < deadline, "no frame arrived"
    return await communicator.receive_json_from(timeout=5)


async def test_verification_output_arrives_while_it_runs(django_user_model) -> None:
    run_id, cookie = await queued_run(django_user_model)
    worker = run_in_background(run_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while (stream_id := await stream_of(run_id)) is None:
        assert loop.time() < deadline, "the run opened no log stream"
        await asyncio.sleep(0.05)
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000"), (b"cookie", cookie)]
    communicator = WebsocketCommunicator(application, f"/ws/logs/{stream_id}/?after=0", headers=headers)
    connected, code = await communicator.connect(timeout=10)
    assert connected, code
    assert (await next_frame(communicator))["type"] == "hello"
    first = await next_frame(communicator)
    assert first["text"] == "working on 1" and first["channel"] == "stderr"
    assert await run_status(run_id) == "running"  # it came while the run was still going

    frames = [first]
    while (frame := await next_frame(communicator)).get("type") != "closed":
        frames.append(frame)
    await asyncio.to_thread(worker.join, 30)
    assert await run_status(run_id) == "passed"
    texts = [frame["text"] for frame in frames]
    assert texts[:4] == [f"working on {index}" for index in range(1, 5)]
    assert texts[-1] == "[orket: verification passed: 4 passed, 0 failed, 0 errors]"
    assert [frame["seq"] for frame in frames] == list(range(1, len(frames) + 1))
    await communicator.disconnect()
