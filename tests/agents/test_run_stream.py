"""The run stream through the full ASGI stack: backfill then live, without gaps or duplicates."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db.models import F
from django.test import Client

from agents import services
from agents.models import ModelProfile, Run, RunEvent, Team
from agents.run_events import event_append
from agents.services import seed_standard_configuration
from boards.models import Epic, Membership, Project, ProjectRole
from orket_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def cookie_for(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


@database_sync_to_async
def make_run(django_user_model, events: int = 5):
    seed_standard_configuration()
    project = Project.objects.create(name="Apollo", slug="apollo")
    epic = Epic.objects.create(project=project, name="Landing")
    run = Run.objects.create(
        project=project,
        epic=epic,
        team=Team.objects.get(name="standard"),
        model_profile=ModelProfile.objects.get(name="scripted-demo"),
    )
    for index in range(events):
        event_append(run.pk, "text", text=f"line {index + 1}")
    viewer = django_user_model.objects.create_user("watcher", password="pw long enough 1")
    Membership.objects.create(project=project, user=viewer, role=ProjectRole.VIEWER)
    stranger = django_user_model.objects.create_user("stranger", password="pw long enough 2")
    return run, cookie_for(viewer), cookie_for(stranger)


async def connect(run_id: int, cookie: bytes | None, after: int = 0, origin: bytes = b"http://127.0.0.1:8000"):
    headers = [(b"origin", origin), (b"host", b"127.0.0.1:8000")]
    if cookie:
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run_id}/?after={after}", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def receive_seqs(communicator, count: int) -> list[int]:
    return [(await communicator.receive_json_from(timeout=5))["seq"] for _ in range(count)]


async def test_backfill_then_live_with_contiguous_sequence(django_user_model):
    run, cookie, _ = await make_run(django_user_model)
    communicator, connected, _ = await connect(run.pk, cookie)
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    assert {"seq": 1, "kind": "text", "turn": None, "card": None, "text": "line 1"}.items() <= first.items()
    assert await receive_seqs(communicator, 4) == [2, 3, 4, 5]
    for index in range(3):
        await sync_to_async(event_append)(run.pk, "text", text=f"live {index}")
    assert await receive_seqs(communicator, 3) == [6, 7, 8]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_reconnect_from_the_middle_gets_exactly_what_was_missed(django_user_model):
    run, cookie, _ = await make_run(django_user_model, events=8)
    communicator, connected, _ = await connect(run.pk, cookie, after=5)
    assert connected
    assert await receive_seqs(communicator, 3) == [6, 7, 8]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@database_sync_to_async
def write_silently(run_id: int, text: str) -> None:
    """Store an event without publishing it, as if the channel layer had dropped the message."""
    Run.objects.filter(pk=run_id).update(last_seq=F("last_seq") + 1)
    seq = Run.objects.get(pk=run_id).last_seq
    RunEvent.objects.create(run_id=run_id, seq=seq, kind="text", data={"text": text})


async def test_a_dropped_live_message_is_caught_up_from_the_database(django_user_model):
    run, cookie, _ = await make_run(django_user_model, events=2)
    communicator, connected, _ = await connect(run.pk, cookie)
    assert connected
    assert await receive_seqs(communicator, 2) == [1, 2]
    await write_silently(run.pk, "dropped 3")
    await write_silently(run.pk, "dropped 4")
    await sync_to_async(event_append)(run.pk, "text", text="published 5")
    frames = [await communicator.receive_json_from(timeout=5) for _ in range(3)]
    assert [(f["seq"], f["text"]) for f in frames] == [(3, "dropped 3"), (4, "dropped 4"), (5, "published 5")]
    await write_silently(run.pk, "dropped at the end 6")  # nothing follows it: the periodic check finds it
    assert (await communicator.receive_json_from(timeout=5))["seq"] == 6
    await communicator.disconnect()


async def test_anonymous_non_member_and_foreign_origin_are_refused(django_user_model):
    run, cookie, stranger = await make_run(django_user_model)
    _, connected, code = await connect(run.pk, None)
    assert (connected, code) == (False, 4401)
    _, connected, code = await connect(run.pk, stranger)
    assert (connected, code) == (False, 4404)
    _, connected, code = await connect(run.pk + 999, cookie)
    assert (connected, code) == (False, 4404)
    _, connected, _ = await connect(run.pk, cookie, origin=b"https://evil.example")
    assert not connected


async def test_the_board_hears_when_a_run_changes(django_user_model):
    run, cookie, _ = await make_run(django_user_model, events=0)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/projects/{run.project_id}/",
        headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"

    @database_sync_to_async
    def start_another_run() -> int:
        Run.objects.filter(pk=run.pk).update(status="succeeded")
        return services.run_start(epic=Epic.objects.get(pk=run.epic_id)).pk

    new_run = await start_another_run()
    assert await communicator.receive_json_from(timeout=5) == {"type": "run.changed", "run": new_run}
    await communicator.disconnect()
