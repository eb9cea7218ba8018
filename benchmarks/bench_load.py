"""Load on the production topology (benchmarks/cluster.py: two daphne, two Celery workers, beat,
PostgreSQL and Redis on this machine): 20 runs at once, 200 WebSocket subscribers on them (10 per run,
spread over both daphne processes), and the board API under 50 concurrent clients while that goes on.

Figures:
- load_runs: runs, how many succeeded, time until all ended;
- load_ws: subscribers, frames received, subscribers whose sequence had a gap or a duplicate (must be
  0) or that timed out, reconnects, and the latency of live model text frames (arrival minus the
  event's `at`) p50/p99; text frames written before the subscriber's socket opened arrive as
  backfill and are counted apart (text_backfilled), since their age measures the wait to connect;
- load_board_api: requests, throughput, latency p50/p95/p99 and errors (must be 0) of GET board and
  card-list calls by 50 concurrent clients.

Usage, from the repository root: .venv/bin/python benchmarks/bench_load.py [--runs 20] [--per-run 10]
[--clients 50] [--speed 2000] [--worker-threads 4]. Needs PostgreSQL and Redis on 127.0.0.1 (prints a
skip line otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402
from websockets.exceptions import WebSocketException  # noqa: E402

from agents.seed_data import DEMO_EPIC  # noqa: E402
from benchmarks.cluster import Cluster  # noqa: E402
from tests.services import port_open  # noqa: E402

FINAL = {"succeeded", "failed", "canceled"}
RUN_TIMEOUT = 900.0


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else float("nan")


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body, headers={"X-CSRFToken": client.cookies["csrftoken"]})
    if response.status_code != 201:
        raise RuntimeError(f"POST {path} gave {response.status_code}: {response.text[:300]}")
    return dict(response.json())


@dataclass
class Followed:
    """What one subscriber saw: every seq, the latency of live text frames, how many text frames
    reached it only as backfill (written before its socket opened), and how often it connected."""

    seqs: list[int] = field(default_factory=list)
    live_ms: list[float] = field(default_factory=list)
    backfilled: int = 0
    connections: int = 0
    status: str | None = None


async def subscribe(url: str, headers: dict[str, str]) -> Followed:
    """Follow one run to its end, reconnecting from the last seq if the socket drops."""
    followed = Followed()
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            await _follow(url, headers, followed)
    except TimeoutError:
        pass  # status stays None: reported as timed out, with what was missing
    return followed


async def _follow(url: str, headers: dict[str, str], followed: Followed) -> None:
    while True:
        after = followed.seqs[-1] if followed.seqs else 0
        try:
            async with ws_connect(f"{url}?after={after}", additional_headers=headers, open_timeout=30) as socket:
                opened = time.time()
                followed.connections += 1
                async for message in socket:
                    frame = json.loads(message)
                    followed.seqs.append(frame["seq"])
                    if frame["kind"] == "text":
                        at = datetime.fromisoformat(frame["at"]).timestamp()
                        if at < opened:
                            followed.backfilled += 1
                        else:
                            followed.live_ms.append((time.time() - at) * 1000)
                    if frame["kind"] == "run.status" and frame.get("status") in FINAL:
                        followed.status = frame["status"]
                        return
        except (OSError, TimeoutError, WebSocketException):
            await asyncio.sleep(0.5)  # reconnect from the last seq, as the run view does


async def board_load(
    base_urls: list[str], cookies: dict[str, str], paths: list[str], clients: int, stop: asyncio.Event
) -> tuple[list[float], int, int, float]:
    latencies: list[float] = []
    errors = 0
    requests = 0
    began = time.monotonic()

    async def one_client(index: int) -> None:
        nonlocal errors, requests
        async with httpx.AsyncClient(base_url=base_urls[index % len(base_urls)], cookies=cookies, timeout=30) as c:
            step = index
            while not stop.is_set():
                path = paths[step % len(paths)]
                step += 1
                started = time.perf_counter()
                try:
                    response = await c.get(path)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                requests += 1
                errors += not ok

    await asyncio.gather(*(one_client(i) for i in range(clients)))
    return latencies, requests, errors, time.monotonic() - began


async def drive(cluster: Cluster, options: argparse.Namespace) -> bool:
    client = cluster.login()
    project = post(client, "/api/projects/", {"name": "Load", "slug": "load"})
    epics = [post(client, f"/api/projects/{project['id']}/import/", DEMO_EPIC)["id"] for _ in range(options.runs)]
    cookies = {"sessionid": client.cookies["sessionid"]}
    base_urls = [cluster.base_url(i) for i in range(len(cluster.webs))]
    paths = [f"/api/epics/{epic}/board/" for epic in epics] + [f"/api/cards/?project={project['id']}"]

    began = time.monotonic()
    runs = [post(client, f"/api/epics/{epic}/runs/", {"model_profile": "scripted-demo"})["id"] for epic in epics]
    subscribers = []
    for index in range(options.runs * options.per_run):
        base = base_urls[index % len(base_urls)]
        headers = {"Cookie": f"sessionid={cookies['sessionid']}", "Origin": base}
        url = f"{base.replace('http://', 'ws://')}/ws/runs/{runs[index % len(runs)]}/"
        subscribers.append(asyncio.create_task(subscribe(url, headers)))
    stop = asyncio.Event()
    board = asyncio.create_task(board_load(base_urls, cookies, paths, options.clients, stop))
    results = await asyncio.gather(*subscribers)
    stop.set()
    latencies, requests, errors, seconds = await board
    elapsed = time.monotonic() - began

    final = {run: client.get(f"/api/runs/{run}/").json() for run in runs}
    succeeded = sum(run["status"] == "succeeded" for run in final.values())
    bad_sequences = 0
    live_ms: list[float] = []
    for index, followed in enumerate(results):
        last = final[runs[index % len(runs)]]["last_seq"]
        if followed.seqs != list(range(1, last + 1)):
            bad_sequences += 1
            if bad_sequences == 1:
                seqs = followed.seqs
                missing = sorted(set(range(1, last + 1)) - set(seqs))[:10]
                twice = sorted({s for s in seqs if seqs.count(s) > 1})[:10]
                say(f"load_ws first bad sequence: last_seq={last} got={len(seqs)} missing={missing} twice={twice}")
        live_ms.extend(followed.live_ms)
    statuses = sorted({run["status"] for run in final.values()})
    say(f"load_runs runs={len(runs)} succeeded={succeeded} statuses={','.join(statuses)} seconds={elapsed:.1f}")
    say(
        f"load_ws subscribers={len(results)} frames={sum(len(f.seqs) for f in results)} "
        f"bad_sequences={bad_sequences} timed_out={sum(f.status is None for f in results)} "
        f"reconnects={sum(f.connections for f in results) - len(results)} "
        f"text_backfilled={sum(f.backfilled for f in results)} text_live={len(live_ms)} "
        f"text_live_p50_ms={statistics.median(live_ms):.1f} text_live_p99_ms={percentile(live_ms, 0.99):.1f}"
    )
    say(
        f"load_board_api clients={options.clients} requests={requests} rps={requests / seconds:.1f} "
        f"p50_ms={percentile(latencies, 0.5):.1f} p95_ms={percentile(latencies, 0.95):.1f} "
        f"p99_ms={percentile(latencies, 0.99):.1f} errors={errors}"
    )
    client.close()
    return succeeded == len(runs) and bad_sequences == 0 and errors == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--per-run", type=int, default=10, help="WebSocket subscribers per run")
    parser.add_argument("--clients", type=int, default=50, help="concurrent board API clients")
    parser.add_argument("--speed", type=float, default=2000.0, help="scripted tokens per second")
    parser.add_argument("--worker-threads", type=int, default=4, help="turns each of the two workers runs at once")
    options = parser.parse_args()
    if not (port_open("postgres://127.0.0.1", 5432) and port_open("redis://127.0.0.1", 6379)):
        say("load skipped: PostgreSQL or Redis not answering on 127.0.0.1")
        return
    env = {"ORKET_SCRIPTED_TOKENS_PER_SECOND": str(options.speed), "ORKET_LOG_LEVEL": "WARNING"}
    with Cluster(env=env, pool="threads", concurrency=options.worker_threads) as cluster:
        try:
            ok = asyncio.run(drive(cluster, options))
        except BaseException:
            sys.stderr.write(cluster.logs())
            raise
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
