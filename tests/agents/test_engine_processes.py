"""The engine on the production topology: separate Celery worker processes and beat against
PostgreSQL and Redis, including a worker killed with SIGKILL in the middle of a turn."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from tests.processes import BIN, app_env, run_manage, started
from tests.services import redis_url
from tests.waits import wait_until

pytestmark = pytest.mark.slow


class Cluster:
    """Worker and beat processes sharing one fresh database, one Redis database and one queue."""

    def __init__(self, database_url: str, workdir: Path, **extra_env: str) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.env = app_env(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url().rsplit("/", 1)[0] + "/12",
            ORKET_QUEUE=f"orket-it-{uuid.uuid4().hex[:8]}",
            ORKET_DATA_DIR=str(workdir / "data"),
            ORKET_LOG_LEVEL="INFO",
            **extra_env,
        )
        self.stack = ExitStack()
        self.workers: list[subprocess.Popen[str]] = []

    def prepare(self) -> None:
        for command in (("migrate", "--noinput"), ("orket_seed",)):
            result = run_manage(self.env, *command)
            assert result.returncode == 0, result.stderr

    def start_worker(self, name: str) -> subprocess.Popen[str]:
        args = [
            str(BIN / "celery"),
            "-A",
            "orket_site",
            "worker",
            "--pool=solo",
            f"--hostname={name}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=INFO",
        ]
        worker = self.stack.enter_context(started(args, self.env, self.workdir / f"{name}.log"))
        self.workers.append(worker)
        return worker

    def start_beat(self) -> None:
        args = [
            str(BIN / "celery"),
            "-A",
            "orket_site",
            "beat",
            "--loglevel=INFO",
            f"--schedule={self.workdir / 'beat-schedule'}",
        ]
        self.stack.enter_context(started(args, self.env, self.workdir / "beat.log"))

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def start_demo_run(self) -> int:
        epic_id = self.query("SELECT id FROM boards_epic ORDER BY id LIMIT 1")[0][0]
        result = run_manage(self.env, "run_epic", str(epic_id))
        assert result.returncode == 0, result.stderr
        return int(self.query("SELECT id FROM agents_run ORDER BY id DESC LIMIT 1")[0][0])

    def wait_for_run(self, run_id: int, timeout: float = 180.0) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, reason = self.query("SELECT status, status_reason FROM agents_run WHERE id = %s", run_id)[0]
            if status in ("succeeded", "failed", "canceled"):
                return status, reason
            time.sleep(0.25)
        logs = "\n".join(p.name + ":\n" + p.read_text()[-3000:] for p in self.workdir.glob("*.log"))
        raise AssertionError(f"run {run_id} did not finish in {timeout} s\n{logs}")

    def assert_run_record_is_whole(self, run_id: int) -> None:
        cards = self.query(
            "SELECT status FROM boards_card WHERE epic_id = (SELECT epic_id FROM agents_run WHERE id=%s)", run_id
        )
        assert [status for (status,) in cards] == ["done"] * len(cards)
        seqs = [seq for (seq,) in self.query("SELECT seq FROM agents_runevent WHERE run_id=%s ORDER BY seq", run_id)]
        assert seqs == list(range(1, len(seqs) + 1))
        finished_twice = self.query(
            "SELECT turn_id, count(*) FROM agents_runevent WHERE run_id=%s AND kind='turn.succeeded' "
            "GROUP BY turn_id HAVING count(*) > 1",
            run_id,
        )
        assert finished_twice == []
        unfinished = self.query("SELECT id, status FROM agents_turn WHERE run_id=%s AND status <> 'succeeded'", run_id)
        assert unfinished == []


@pytest.fixture
def cluster(postgres_database: str, tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(
        postgres_database,
        tmp_path,
        ORKET_TURN_LEASE_SECONDS="4",
        ORKET_REAP_SECONDS="1",
        ORKET_SCRIPTED_TOKENS_PER_SECOND="150",
    )
    cluster.prepare()
    with cluster.stack:
        yield cluster


def test_demo_epic_succeeds_on_worker_processes(cluster: Cluster) -> None:
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    cluster.start_beat()
    run_id = cluster.start_demo_run()
    status, reason = cluster.wait_for_run(run_id)
    assert status == "succeeded", reason
    cluster.assert_run_record_is_whole(run_id)
    owners = {
        owner.split(":")[1] for (owner,) in cluster.query("SELECT lease_owner FROM agents_turn WHERE run_id=%s", run_id)
    }
    assert owners <= {str(worker.pid) for worker in cluster.workers}
    authors = subprocess.run(
        ["git", "log", "--format=%an", "main"],
        cwd=cluster.workdir / "data" / "workspaces" / "project-1" / "repo",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {"lead_architect", "senior_developer"} <= set(authors)


def test_a_worker_killed_mid_turn_does_not_lose_or_repeat_the_turn(cluster: Cluster) -> None:
    workers = {str(cluster.start_worker(name).pid): name for name in ("w1", "w2")}
    cluster.start_beat()
    run_id = cluster.start_demo_run()
    deadline = time.monotonic() + 60
    victim_turn = victim_pid = None
    while time.monotonic() < deadline and victim_pid is None:
        for turn_id, owner in cluster.query(
            "SELECT id, lease_owner FROM agents_turn WHERE run_id=%s AND status='running'", run_id
        ):
            pid = owner.split(":")[1]
            if pid in workers:
                victim_turn, victim_pid = turn_id, int(pid)
                break
        time.sleep(0.05)
    assert victim_pid is not None, "no turn started running"
    # Well inside the turn: the scripted model has begun streaming it (it streams for a few seconds).
    wait_until(
        "the victim's turn streams model output",
        lambda: cluster.query(
            "SELECT 1 FROM agents_runevent WHERE turn_id=%s AND kind IN ('text', 'reasoning') LIMIT 1", victim_turn
        ),
        timeout=30,
        interval=0.05,
    )
    os.kill(victim_pid, signal.SIGKILL)
    status, reason = cluster.wait_for_run(run_id)
    assert status == "succeeded", reason
    cluster.assert_run_record_is_whole(run_id)
    attempts, owner = cluster.query("SELECT attempts, lease_owner FROM agents_turn WHERE id=%s", victim_turn)[0]
    assert attempts == 2
    assert owner.split(":")[1] != str(victim_pid)
    requeued = cluster.query(
        "SELECT count(*) FROM agents_runevent WHERE run_id=%s AND kind='turn.requeued' AND turn_id=%s",
        run_id,
        victim_turn,
    )[0][0]
    assert requeued == 1
