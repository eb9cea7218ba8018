"""One private cluster (benchmarks/cluster.py) shared by the fault tests: two daphne processes, two
Celery workers and beat, with a PostgreSQL and a Redis of its own that the tests may stop and
restart without disturbing anyone else. Started once per session, stopped at the end."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from agents.seed_data import DEMO_EPIC
from benchmarks.cluster import Cluster, _postgres_bin
from tests.services import missing_service

FINAL = ("succeeded", "failed", "canceled")
CLUSTER_ENV = {
    "ORKET_SCRIPTED_TOKENS_PER_SECOND": "150",
    "ORKET_TURN_LEASE_SECONDS": "8",
    "ORKET_REAP_SECONDS": "2",
    "ORKET_LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("redis-server") is None:
        missing_service("redis-server is not installed")
    try:
        _postgres_bin()
    except RuntimeError as error:
        missing_service(str(error))
    workdir = tmp_path_factory.mktemp("cluster")
    with Cluster(private=True, workdir=workdir, pool="threads", concurrency=3, env=CLUSTER_ENV) as running:
        yield running


@dataclass
class Api:
    """The logged-in HTTP session of the cluster's administrator."""

    client: httpx.Client

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers={"X-CSRFToken": self.client.cookies["csrftoken"]})
        if response.status_code != 201:
            raise AssertionError(f"POST {path} gave {response.status_code}: {response.text[:500]}")
        return dict(response.json())

    def demo_epic(self, label: str) -> int:
        slug = f"{label}-{uuid.uuid4().hex[:6]}"
        project = self.post("/api/projects/", {"name": f"Faults {label}", "slug": slug})
        # The demo cards have no verification fixtures; the faults are about the engine, not about them.
        settings = self.client.patch(
            f"/api/projects/{project['id']}/settings/",
            json={"require_verification": False},
            headers={"X-CSRFToken": self.client.cookies["csrftoken"]},
        )
        assert settings.status_code == 200, settings.text
        return int(self.post(f"/api/projects/{project['id']}/import/", DEMO_EPIC)["id"])

    def start_run(self, epic_id: int, profile: str = "scripted-demo") -> int:
        return int(self.post(f"/api/epics/{epic_id}/runs/", {"model_profile": profile})["id"])

    @property
    def session_headers(self) -> dict[str, str]:
        return {"Cookie": f"sessionid={self.client.cookies['sessionid']}"}


@pytest.fixture
def api(cluster: Cluster) -> Iterator[Api]:
    client = cluster.login(0)
    try:
        yield Api(client)
    finally:
        client.close()


def wait_for_runs(cluster: Cluster, run_ids: list[int], timeout: float) -> dict[int, tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = cluster.query("SELECT id, status, status_reason FROM agents_run WHERE id = ANY(%s)", run_ids)
        statuses = {row[0]: (row[1], row[2]) for row in rows}
        if all(status in FINAL for status, _ in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"runs not finished after {timeout} s: {statuses}\n{cluster.logs()}")
        time.sleep(0.5)


@dataclass
class Subscriber:
    """A browser-like WebSocket subscriber of one run that reconnects with ?after=<last seq>."""

    base_url: str
    run_id: int
    headers: dict[str, str]
    seqs: list[int] = field(default_factory=list)
    connections: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def last(self) -> int:
        return max(self.seqs, default=0)

    async def follow(self, target: dict[int, int], deadline: float) -> None:
        ws_url = self.base_url.replace("http://", "ws://") + f"/ws/runs/{self.run_id}/"
        headers = {**self.headers, "Origin": self.base_url}
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            if self.run_id in target and self.last >= target[self.run_id]:
                return
            try:
                async with ws_connect(
                    f"{ws_url}?after={self.last}", additional_headers=headers, open_timeout=5, max_size=2**22
                ) as socket:
                    self.connections += 1
                    while loop.time() < deadline:
                        if self.run_id in target and self.last >= target[self.run_id]:
                            return
                        try:
                            message = await asyncio.wait_for(socket.recv(), timeout=0.5)
                        except TimeoutError:
                            continue
                        self.seqs.append(int(json.loads(message)["seq"]))
            except (OSError, TimeoutError, InvalidHandshake, WebSocketException) as error:
                self.errors.append(type(error).__name__)
            await asyncio.sleep(0.3)


def event_kinds(cluster: Cluster, run_id: int) -> list[str]:
    return [kind for (kind,) in cluster.query("SELECT kind FROM agents_runevent WHERE run_id=%s ORDER BY seq", run_id)]


def assert_runs_whole(cluster: Cluster, run_ids: list[int]) -> None:
    """No gap in any run's events, no turn succeeded twice, nothing left running or half-held."""
    for run_id in run_ids:
        seqs = [s for (s,) in cluster.query("SELECT seq FROM agents_runevent WHERE run_id=%s ORDER BY seq", run_id)]
        last_seq = cluster.query("SELECT last_seq FROM agents_run WHERE id=%s", run_id)[0][0]
        assert seqs == list(range(1, last_seq + 1)), f"run {run_id}: events are not 1..{last_seq}"
    twice = cluster.query(
        "SELECT run_id, card_id, number, count(*) FROM agents_turn WHERE run_id = ANY(%s) AND status='succeeded' "
        "GROUP BY run_id, card_id, number HAVING count(*) > 1",
        run_ids,
    )
    assert twice == [], f"turns that succeeded twice for one (card, number): {twice}"
    finished_events = cluster.query(
        "SELECT t.id, t.status, count(e.id) FROM agents_turn t LEFT JOIN agents_runevent e "
        "ON e.turn_id = t.id AND e.kind = 'turn.succeeded' WHERE t.run_id = ANY(%s) GROUP BY t.id, t.status",
        run_ids,
    )
    for turn_id, status, count in finished_events:
        assert count == (1 if status == "succeeded" else 0), f"turn {turn_id} ({status}) has {count} turn.succeeded"
    active = cluster.query("SELECT id, status FROM agents_turn WHERE status IN ('queued', 'running')")
    assert active == [], f"turns still active at the end: {active}"
    orphans = cluster.query(
        "SELECT c.id, c.status FROM boards_card c WHERE c.status = 'in_progress' AND NOT EXISTS "
        "(SELECT 1 FROM agents_turn t WHERE t.card_id = c.id AND t.status IN ('queued', 'running'))"
    )
    assert orphans == [], f"cards in progress that no worker holds: {orphans}"


def project_of_run(cluster: Cluster, run_id: int) -> int:
    return int(cluster.query("SELECT project_id FROM agents_run WHERE id=%s", run_id)[0][0])


def assert_tokens_counted_once(cluster: Cluster, run_id: int) -> None:
    """The run's token count is the sum of its steps': no stored answer was counted twice."""
    run_tokens = cluster.query("SELECT tokens_in + tokens_out FROM agents_run WHERE id = %s", run_id)[0][0]
    step_tokens = cluster.query(
        "SELECT sum(s.tokens_in + s.tokens_out) FROM agents_turnstep s JOIN agents_turn t ON s.turn_id = t.id "
        "WHERE t.run_id = %s",
        run_id,
    )[0][0]
    assert run_tokens == step_tokens, "a step's tokens were counted twice"
