"""Log streams: gapless sequence numbers under concurrent writers, the batching writer, retention,
the producers' compare-and-set cursor, the REST read, and the socket through the real ASGI app
(backfill then live, resume after a reconnect, refusals). SQLite and the in-memory layer by default;
PostgreSQL and Redis with ORKET_TEST_DATABASE_URL and ORKET_TEST_REDIS_URL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from boards import services as board_services
from boards.models import Membership, Project, ProjectRole
from orket_site.asgi import application
from sandboxes.errors import LogStreamClosed
from sandboxes.log_streams import (
    LogWriter,
    log_append,
    log_lines_append,
    log_stream_close,
    log_stream_open,
)
from sandboxes.models import LogLine, LogStream

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = b"http://127.0.0.1:8000"


def _stream(project: Project) -> LogStream:
    return log_stream_open(project_id=project.pk, kind="command", label="pytest -q", refs={"card": 1})


def _lines(stream_id: int) -> list[tuple[int, str, str]]:
    return list(LogLine.objects.filter(stream_id=stream_id).order_by("seq").values_list("seq", "channel", "text"))


def test_concurrent_appends_get_gapless_unique_numbers(project: Project) -> None:
    stream = _stream(project)
    writers, per_writer = 6, 40
    errors: list[BaseException] = []

    def write(name: int) -> None:
        try:
            for index in range(per_writer):
                log_append(stream_id=stream.pk, channel="stdout", text=f"w{name} {index}\n")
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=write, args=(name,)) for name in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    lines = _lines(stream.pk)
    assert [seq for seq, _, _ in lines] == list(range(1, writers * per_writer + 1))
    for name in range(writers):  # each writer's lines in its own order
        mine = [text for _, _, text in lines if text.startswith(f"w{name} ")]
        assert mine == [f"w{name} {index}" for index in range(per_writer)]
    assert LogStream.objects.get(pk=stream.pk).last_seq == writers * per_writer


def test_append_splits_lines_and_refuses_bad_input_and_closed_streams(project: Project) -> None:
    stream = _stream(project)
    assert log_append(stream_id=stream.pk, channel="stdout", text="one\r\ntwo\nthree") == 3
    assert log_append(stream_id=stream.pk, channel="stderr", text="") == 3
    assert _lines(stream.pk) == [(1, "stdout", "one"), (2, "stdout", "two"), (3, "stdout", "three")]
    from boards.errors import InvalidInput

    with pytest.raises(InvalidInput):
        log_append(stream_id=stream.pk, channel="stdin", text="x\n")
    long = "x" * 10_000
    log_append(stream_id=stream.pk, channel="stdout", text=long + "\x00\n")
    text = LogLine.objects.get(stream=stream, seq=4).text
    assert len(text) == 4_000 and text.endswith("[orket: line cut]")
    log_stream_close(stream_id=stream.pk)
    with pytest.raises(LogStreamClosed):
        log_append(stream_id=stream.pk, channel="stdout", text="late\n")
    assert LogStream.objects.get(pk=stream.pk).last_seq == 4


def test_retention_keeps_the_last_lines(project: Project, settings) -> None:
    settings.ORKET_LOG_STREAM_MAX_LINES = 100
    stream = _stream(project)
    for index in range(250):
        log_append(stream_id=stream.pk, channel="stdout", text=f"{index}\n")
    stream.refresh_from_db()
    kept = _lines(stream.pk)
    assert stream.last_seq == 250
    assert 100 <= len(kept) <= 110 and kept[-1] == (250, "stdout", "249")
    assert kept[0][0] == stream.trimmed_through + 1


def test_a_producer_cursor_stores_each_read_once(project: Project) -> None:
    stream = _stream(project)
    first = log_lines_append(stream_id=stream.pk, lines=[("stdout", "a")], source="f", read_from=None, read_to=2)
    assert first == 1
    # A second follower that read the same bytes from the same place stores nothing.
    assert log_lines_append(stream_id=stream.pk, lines=[("stdout", "a")], source="f", read_from=None, read_to=2) is None
    assert log_lines_append(stream_id=stream.pk, lines=[("stdout", "b")], source="f", read_from=2, read_to=4) == 2
    stream.refresh_from_db()
    assert stream.cursor == {"f": 4} and stream.last_seq == 2
    assert [text for _, _, text in _lines(stream.pk)] == ["a", "b"]


def test_the_writer_batches_output_from_many_threads(project: Project) -> None:
    stream = _stream(project)
    writer = LogWriter(stream.pk, flush_seconds=0.05)
    started = time.monotonic()
    writer("stdout", "first li")
    writer("stdout", "ne\nsecond line\n")
    writer("stderr", "an error without its newline")
    deadline = time.monotonic() + 5
    while LogStream.objects.get(pk=stream.pk).last_seq < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert time.monotonic() - started < 1.0  # lines reach the database within the flush window
    threads = [
        threading.Thread(target=lambda n=n: [writer("stdout", f"t{n} {i}\n") for i in range(50)]) for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    lines = _lines(stream.pk)
    texts = [text for _, _, text in lines]
    assert texts[:2] == ["first line", "second line"]
    assert "an error without its newline" in texts
    assert [seq for seq, _, _ in lines] == list(range(1, len(lines) + 1))
    for n in range(4):
        assert [text for text in texts if text.startswith(f"t{n} ")] == [f"t{n} {i}" for i in range(50)]
    assert not writer.failed


def test_the_rest_read_pages_after_a_sequence_number(project: Project, make_user, api_as) -> None:
    stream = _stream(project)
    for index in range(5):
        log_append(stream_id=stream.pk, channel="stdout", text=f"line {index + 1}\n")
    viewer = make_user("viewer")
    Membership.objects.create(project=project, user=viewer, role=ProjectRole.VIEWER)
    client = api_as(viewer)
    answer = client.get(f"/api/log-streams/{stream.pk}/lines/?after=2&limit=2")
    assert answer.status_code == 200
    body = answer.json()
    assert [line["seq"] for line in body["lines"]] == [3, 4] and body["more"] is True
    assert body["lines"][0]["text"] == "line 3" and body["last_seq"] == 5
    assert client.get(f"/api/log-streams/{stream.pk}/lines/?after=x").status_code == 400
    listed = client.get(f"/api/log-streams/?project={project.pk}").json()
    assert [item["id"] for item in listed["results"] if "results" in listed] or listed
    client.force_authenticate(make_user("stranger"))
    assert client.get(f"/api/log-streams/{stream.pk}/lines/").status_code == 404


# -- the socket -----------------------------------------------------------------------------------------------------


def _cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


@database_sync_to_async
def _world(django_user_model, lines: int = 3) -> tuple[LogStream, bytes, bytes, Any]:
    project = Project.objects.create(name="Logs", slug="logs")
    stream = _stream(project)
    for index in range(lines):
        log_append(stream_id=stream.pk, channel="stdout", text=f"line {index + 1}\n")
    member = django_user_model.objects.create_user("member", password="pw long enough 1")
    Membership.objects.create(project=project, user=member, role=ProjectRole.MEMBER)
    stranger = django_user_model.objects.create_user("stranger", password="pw long enough 2")
    return stream, _cookie(member), _cookie(stranger), member


async def _connect(stream_id: int, cookie: bytes | None, after: int = 0, origin: bytes = ORIGIN):
    headers = [(b"origin", origin), (b"host", b"127.0.0.1:8000")]
    if cookie:
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, f"/ws/logs/{stream_id}/?after={after}", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def test_backfill_then_live_then_closed(django_user_model) -> None:
    stream, cookie, _, _ = await _world(django_user_model)
    communicator, connected, _ = await _connect(stream.pk, cookie)
    assert connected
    hello = await communicator.receive_json_from(timeout=5)
    assert hello["type"] == "hello" and hello["last_seq"] == 3 and not hello["closed"]
    frames = [await communicator.receive_json_from(timeout=5) for _ in range(3)]
    assert [(f["seq"], f["text"]) for f in frames] == [(1, "line 1"), (2, "line 2"), (3, "line 3")]
    await sync_to_async(log_append)(stream_id=stream.pk, channel="stderr", text="live 4\nlive 5\n")
    frames = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    assert [(f["seq"], f["channel"], f["text"]) for f in frames] == [(4, "stderr", "live 4"), (5, "stderr", "live 5")]
    await sync_to_async(log_stream_close)(stream_id=stream.pk)
    assert await communicator.receive_json_from(timeout=5) == {"type": "closed", "last_seq": 5}
    await communicator.disconnect()


async def test_a_reconnect_with_the_last_seq_gets_exactly_the_rest(django_user_model) -> None:
    stream, cookie, _, _ = await _world(django_user_model, lines=6)
    communicator, connected, _ = await _connect(stream.pk, cookie, after=4)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
    assert [(await communicator.receive_json_from(timeout=5))["seq"] for _ in range(2)] == [5, 6]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@database_sync_to_async
def _write_silently(stream_id: int, text: str) -> None:
    """Store a line without publishing it, as if the channel layer had dropped the message."""
    from django.db.models import F

    LogStream.objects.filter(pk=stream_id).update(last_seq=F("last_seq") + 1)
    seq = LogStream.objects.get(pk=stream_id).last_seq
    LogLine.objects.create(stream_id=stream_id, seq=seq, text=text)


async def test_dropped_live_lines_are_caught_up_from_the_database(django_user_model) -> None:
    stream, cookie, _, _ = await _world(django_user_model, lines=1)
    communicator, connected, _ = await _connect(stream.pk, cookie)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
    assert (await communicator.receive_json_from(timeout=5))["seq"] == 1
    await _write_silently(stream.pk, "dropped 2")
    await sync_to_async(log_append)(stream_id=stream.pk, channel="stdout", text="published 3\n")
    frames = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
    assert [(f["seq"], f["text"]) for f in frames] == [(2, "dropped 2"), (3, "published 3")]
    await _write_silently(stream.pk, "dropped at the end 4")  # the periodic check finds it
    assert (await communicator.receive_json_from(timeout=6))["seq"] == 4
    await communicator.disconnect()


async def test_strangers_foreign_origins_and_removed_members_are_refused(django_user_model) -> None:
    stream, cookie, stranger, member = await _world(django_user_model)
    _, connected, code = await _connect(stream.pk, None)
    assert (connected, code) == (False, 4401)
    _, connected, code = await _connect(stream.pk, stranger)  # not a member: as if there were no stream
    assert (connected, code) == (False, 4404)
    _, connected, code = await _connect(stream.pk + 999, cookie)
    assert (connected, code) == (False, 4404)
    _, connected, _ = await _connect(stream.pk, cookie, origin=b"https://evil.example")
    assert not connected
    communicator, connected, _ = await _connect(stream.pk, cookie)
    assert connected
    await database_sync_to_async(board_services.membership_remove)(
        project=await database_sync_to_async(Project.objects.get)(pk=stream.project_id), user_id=member.pk
    )
    deadline = time.monotonic() + 5
    code = None
    while time.monotonic() < deadline:
        output = await communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            code = output.get("code")
            break
    await communicator.disconnect()
    assert code == 4403
