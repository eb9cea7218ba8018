"""Five epics at once on the cluster while it is hurt three ways: a worker is killed with SIGKILL in
the middle of a turn, Redis (broker, channel layer, cache) is restarted and loses everything it held,
and one daphne process is restarted while WebSocket subscribers are connected to it.

Afterwards every run has succeeded, no turn completed twice, no card is left in progress without a
worker holding it, and every subscriber (one per run on each daphne process, reconnecting with
?after=<last seq> whenever its connection drops) has received the run's events 1..last_seq exactly
once, in order."""

from __future__ import annotations

import asyncio
import collections
import signal
import time

import pytest

from benchmarks.cluster import Cluster
from tests.faults.conftest import FINAL, Api, Subscriber, assert_runs_whole, wait_for_runs
from tests.waits import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.services]

EPICS = 5
# The demo scenario: every card takes a worker turn and a review turn; the card labelled
# needs-changes is sent back once, so it takes two of each.
TURNS_PER_CARD = {
    "Design the greeting service": 2,
    "Implement the greeting formatter": 4,
    "Implement the name validator": 2,
    "Wire the greeting service together": 2,
}
RUNS_TIMEOUT = 300.0


def running_turn_on(cluster: Cluster, run_ids: list[int], pid: int) -> int | None:
    for turn_id, owner in cluster.query(
        "SELECT id, lease_owner FROM agents_turn WHERE run_id = ANY(%s) AND status = 'running'", run_ids
    ):
        if owner.split(":")[1] == str(pid):
            return int(turn_id)
    return None


def streamed(cluster: Cluster, turn_id: int) -> bool:
    return bool(
        cluster.query(
            "SELECT 1 FROM agents_runevent WHERE turn_id=%s AND kind IN ('text', 'reasoning') LIMIT 1", turn_id
        )
    )


def events_written(cluster: Cluster, run_ids: list[int]) -> int:
    return int(cluster.query("SELECT coalesce(sum(last_seq), 0) FROM agents_run WHERE id = ANY(%s)", run_ids)[0][0])


def unfinished(cluster: Cluster, run_ids: list[int]) -> int:
    rows = cluster.query("SELECT status FROM agents_run WHERE id = ANY(%s)", run_ids)
    return sum(status not in FINAL for (status,) in rows)


async def hurt(cluster: Cluster, run_ids: list[int], log: list[str]) -> int:
    """The three faults, each while runs are still going; returns the turn the killed worker held."""
    victim = cluster.workers[0]
    deadline = time.monotonic() + 90
    victim_turn = None
    while victim_turn is None:
        assert time.monotonic() < deadline, "no turn ran on the first worker"
        victim_turn = await asyncio.to_thread(running_turn_on, cluster, run_ids, victim.pid)
        await asyncio.sleep(0.1)
    # Well inside the turn: the scripted model has begun streaming it (it streams for seconds).
    await asyncio.to_thread(
        wait_until,
        "the victim's turn streams model output",
        lambda: streamed(cluster, victim_turn),
        timeout=30,
        interval=0.05,
    )
    cluster.kill_worker(victim, signal.SIGKILL)
    log.append(f"killed {victim.name} (pid {victim.pid}) holding turn {victim_turn}")
    await asyncio.to_thread(cluster.start_worker, True)  # its supervisor would start a new one
    assert await asyncio.to_thread(unfinished, cluster, run_ids), "the runs ended before Redis was restarted"
    await asyncio.to_thread(cluster.restart_redis, 2.0)
    log.append("restarted Redis")
    progress = await asyncio.to_thread(events_written, cluster, run_ids)
    await asyncio.to_thread(
        wait_until,
        "the runs write events again after Redis came back",
        lambda: events_written(cluster, run_ids) > progress,
        timeout=60,
        interval=0.2,
    )
    assert await asyncio.to_thread(unfinished, cluster, run_ids), "the runs ended before daphne was restarted"
    await asyncio.to_thread(cluster.restart_web, 0, 1.0)
    log.append("restarted web0")
    return victim_turn


async def scenario(cluster: Cluster, api: Api, run_ids: list[int]) -> tuple[list[Subscriber], int, list[str]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RUNS_TIMEOUT + 60
    target: dict[int, int] = {}
    subscribers = [
        Subscriber(cluster.base_url(web), run_id, api.session_headers) for run_id in run_ids for web in (0, 1)
    ]
    following = [asyncio.create_task(sub.follow(target, deadline)) for sub in subscribers]
    log: list[str] = []
    victim_turn = await hurt(cluster, run_ids, log)
    await asyncio.to_thread(wait_for_runs, cluster, run_ids, RUNS_TIMEOUT)
    for run_id, last_seq in cluster.query("SELECT id, last_seq FROM agents_run WHERE id = ANY(%s)", run_ids):
        target[run_id] = last_seq
    async with asyncio.timeout(60):
        await asyncio.gather(*following)
    return subscribers, victim_turn, log


@pytest.mark.timeout(600)
def test_five_epics_survive_a_killed_worker_a_redis_restart_and_a_daphne_restart(cluster: Cluster, api: Api) -> None:
    began = time.monotonic()
    run_ids = [api.start_run(api.demo_epic(f"faults-{index}")) for index in range(EPICS)]
    subscribers, victim_turn, log = asyncio.run(scenario(cluster, api, run_ids))

    statuses = wait_for_runs(cluster, run_ids, 1)
    assert {status for status, _ in statuses.values()} == {"succeeded"}, statuses
    assert_runs_whole(cluster, run_ids)

    # Every card got exactly the turns the scenario gives it: nothing was done twice or skipped.
    rows = cluster.query(
        "SELECT t.run_id, c.title, count(*) FROM agents_turn t JOIN boards_card c ON c.id = t.card_id "
        "WHERE t.run_id = ANY(%s) AND t.status = 'succeeded' GROUP BY t.run_id, c.title",
        run_ids,
    )
    per_run: dict[int, dict[str, int]] = collections.defaultdict(dict)
    for run_id, title, count in rows:
        per_run[run_id][title] = count
    for run_id in run_ids:
        assert per_run[run_id] == TURNS_PER_CARD, f"run {run_id}: {per_run[run_id]}"
    cards = cluster.query(
        "SELECT status, count(*) FROM boards_card WHERE epic_id IN (SELECT epic_id FROM agents_run "
        "WHERE id = ANY(%s)) GROUP BY status",
        run_ids,
    )
    assert cards == [("done", EPICS * len(TURNS_PER_CARD))]

    # The killed worker's turn went back to the queue once and was finished by another worker.
    status, attempts, owner = cluster.query(
        "SELECT status, attempts, lease_owner FROM agents_turn WHERE id=%s", victim_turn
    )[0]
    assert status == "succeeded" and attempts >= 2, (status, attempts)
    assert owner.split(":")[1] != str(cluster.workers[0].pid)
    requeued = cluster.query(
        "SELECT count(*) FROM agents_runevent WHERE kind='turn.requeued' AND turn_id=%s", victim_turn
    )
    assert requeued[0][0] >= 1

    # Every subscriber saw every event once, in order, whatever happened to its connection.
    last_seqs = dict(cluster.query("SELECT id, last_seq FROM agents_run WHERE id = ANY(%s)", run_ids))
    for sub in subscribers:
        assert sub.seqs == list(range(1, last_seqs[sub.run_id] + 1)), (
            f"subscriber of run {sub.run_id} on {sub.base_url}: {len(sub.seqs)} frames, "
            f"{sub.connections} connections, errors {sub.errors}"
        )
    restarted_web = cluster.base_url(0)
    assert all(sub.connections >= 2 for sub in subscribers if sub.base_url == restarted_web), [
        (sub.run_id, sub.connections) for sub in subscribers
    ]
    print(f"faults: {'; '.join(log)}; {time.monotonic() - began:.0f} s")
