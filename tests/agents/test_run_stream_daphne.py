"""The run stream on the production topology: daphne and a Celery worker process on a fresh PostgreSQL
database, events carried between them by the Redis channel layer. Subscribers that connect in the
middle of a run receive every event exactly once, in order, equal to the stored record."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from tests.processes import BIN, app_env, login_over_http, run_manage, started, wait_for_http
from tests.services import free_port, redis_url

pytestmark = pytest.mark.slow

ADMIN = "operator"
PASSWORD = "stream test password 5"
FINAL = {"succeeded", "failed", "canceled"}
RUN_TIMEOUT = 180.0


@dataclass
class Topology:
    base_url: str
    ws_url: str
    database_url: str
    session: httpx.Client
    logs: Path

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
def topology(postgres_database: str, tmp_path: Path) -> Iterator[Topology]:
    env = app_env(
        DATABASE_URL=postgres_database,
        REDIS_URL=redis_url().rsplit("/", 1)[0] + "/13",
        ORKET_QUEUE=f"orket-stream-{uuid.uuid4().hex[:8]}",
        ORKET_SCRIPTED_TOKENS_PER_SECOND="80",
        ORKET_DATA_DIR=str(tmp_path / "data"),
        ORKET_ADMIN_USER=ADMIN,
        ORKET_ADMIN_PASSWORD=PASSWORD,
        ORKET_LOG_LEVEL="INFO",
    )
    for command in (("migrate", "--noinput"), ("orket_seed",)):
        result = run_manage(env, *command)
        assert result.returncode == 0, result.stderr
    port = free_port()
    worker_args = [
        str(BIN / "celery"),
        "-A",
        "orket_site",
        "worker",
        "--pool=solo",
        f"--hostname=stream-{port}@%h",
        "--without-mingle",
        "--without-gossip",
        "--loglevel=INFO",
    ]
    web_args = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "orket_site.asgi:application"]
    base_url = f"http://127.0.0.1:{port}"
    with (
        started(worker_args, env, tmp_path / "worker.log"),
        started(web_args, env, tmp_path / "web.log") as web,
    ):
        ready = wait_for_http(f"{base_url}/readyz", process=web, timeout=60)
        assert ready.status_code == 200, ready.text
        session = login_over_http(base_url, ADMIN, PASSWORD)
        try:
            yield Topology(base_url, f"ws://127.0.0.1:{port}", postgres_database, session, tmp_path)
        finally:
            session.close()


@dataclass
class Subscriber:
    """Reads one run stream on a thread until the run's final status frame, then drains briefly."""

    socket: ClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    opened_at: float = field(default_factory=time.monotonic)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> Subscriber:
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT
        try:
            while time.monotonic() < deadline:
                frame = json.loads(self.socket.recv(timeout=deadline - time.monotonic()))
                self.frames.append(frame)
                self.arrivals.append(time.monotonic())
                if frame["kind"] == "run.status" and frame.get("status") in FINAL:
                    break
            # Anything stored after the final status (there should be nothing) would still arrive.
            while True:
                self.frames.append(json.loads(self.socket.recv(timeout=1.5)))
        except TimeoutError:
            return
        except ConnectionClosed as closed:
            self.error = closed
        except BaseException as error:
            self.error = error

    def wait(self) -> list[dict[str, Any]]:
        assert self.thread is not None
        self.thread.join(RUN_TIMEOUT + 10)
        assert not self.thread.is_alive(), "the subscriber did not finish"
        self.socket.close()
        if self.error is not None:
            raise AssertionError(f"subscriber failed: {self.error!r}")
        return self.frames


def subscribe(topology: Topology, run_id: int, after: int) -> Subscriber:
    socket = ws_connect(
        f"{topology.ws_url}/ws/runs/{run_id}/?after={after}",
        additional_headers={
            "Cookie": f"sessionid={topology.session.cookies['sessionid']}",
            "Origin": topology.base_url,
        },
        open_timeout=10,
        close_timeout=5,
        max_size=2**22,
    )
    return Subscriber(socket).start()


def stored_frames(topology: Topology, run_id: int) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while True:
        after = frames[-1]["seq"] if frames else 0
        page = topology.session.get(f"/api/runs/{run_id}/events/", params={"after": after})
        assert page.status_code == 200, page.text
        if not page.json()["events"]:
            return frames
        frames += page.json()["events"]


def test_subscribers_joining_mid_run_receive_every_event_exactly_once(topology: Topology) -> None:
    with psycopg.connect(topology.database_url, autocommit=True) as conn:
        epic_id = conn.execute("SELECT id FROM boards_epic ORDER BY id LIMIT 1").fetchone()[0]
    start = topology.session.post(
        f"/api/epics/{epic_id}/runs/",
        json={"model_profile": "scripted-demo"},
        headers={"X-CSRFToken": topology.session.cookies["csrftoken"]},
    )
    assert start.status_code == 201, start.text
    run_id = start.json()["id"]

    # Join once the run is well under way: text is streaming and some events are already stored.
    deadline = time.monotonic() + 60
    while True:
        run = topology.session.get(f"/api/runs/{run_id}/").json()
        if run["status"] == "running" and run["last_seq"] >= 15:
            break
        assert run["status"] not in FINAL, f"the run ended before anyone subscribed: {run}"
        assert time.monotonic() < deadline, f"the run did not get going: {run}\n{topology.log_tails()}"
        time.sleep(0.05)
    first = subscribe(topology, run_id, after=0)

    # The second subscriber joins later still, from a point in the middle of what was sent so far.
    deadline = time.monotonic() + 60
    while len(first.frames) < run["last_seq"] + 10 and first.thread is not None and first.thread.is_alive():
        assert time.monotonic() < deadline, topology.log_tails()
        time.sleep(0.02)
    middle = first.frames[len(first.frames) // 2]["seq"]
    second = subscribe(topology, run_id, after=middle)
    first_frames, second_frames = first.wait(), second.wait()

    final = topology.session.get(f"/api/runs/{run_id}/").json()
    assert final["status"] == "succeeded", f"{final['status_reason']}\n{topology.log_tails()}"
    last_seq = final["last_seq"]
    assert [f["seq"] for f in first_frames] == list(range(1, last_seq + 1))
    assert [f["seq"] for f in second_frames] == list(range(middle + 1, last_seq + 1))
    statuses = [f["status"] for f in first_frames if f["kind"] == "run.status"]
    assert statuses[-1] == "succeeded"
    # Live frames are what was stored: the same fields, the same text, line for line.
    record = stored_frames(topology, run_id)
    assert first_frames == record
    assert second_frames == record[middle:]
    # The run really was going on while both were connected: many frames came live, well after joining.
    for subscriber in (first, second):
        late = [
            f for f, at in zip(subscriber.frames, subscriber.arrivals, strict=False) if at - subscriber.opened_at > 1
        ]
        assert sum(1 for f in late if f["kind"] == "text") > 10

    # The audit export, streamed by daphne through the async path, holds the same record.
    with topology.session.stream("GET", f"/api/runs/{run_id}/export/") as export:
        assert export.status_code == 200
        assert export.headers["content-type"] == "application/x-ndjson"
        assert export.headers["content-disposition"] == f'attachment; filename="run-{run_id}.jsonl"'
        lines = [json.loads(line) for line in export.iter_lines() if line]
    assert lines[0]["type"] == "run" and lines[0]["run"]["status"] == "succeeded"
    assert [line["event"] for line in lines if line["type"] == "event"] == record
