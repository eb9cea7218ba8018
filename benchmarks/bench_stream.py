"""Latency of live run output: from a provider chunk to the frame arriving at a WebSocket client, with
1, 10 and 50 subscribers on one run, for the in-memory channel layer (the embedded server, `manage.py
orket_run`, one process) and the Redis layer (daphne and a `celery worker --pool=solo` process on a
fresh PostgreSQL database).

Each measurement imports the demo epic into a project of its own, starts a run with the scripted
provider streaming at a fixed speed (ORKET_SCRIPTED_TOKENS_PER_SECOND, two words per chunk), connects
the subscribers while the run is queued and reads until the final run status. Only model text frames
(`text`, `reasoning`) stored at least SETTLE_SECONDS after the last subscriber joined are counted, so
every one was delivered live, not queued behind the connect storm's backfills (50 subscribers joining
at once is a separate cost: each reads the run's events from the database first). Two figures per
frame, both on this machine's wall clock:
- from_event: arrival minus the event's `at` (written when the coalescer flushes, right after the
  chunk that completed the frame): database write and commit, channel layer, consumer, socket;
- from_first_chunk: arrival minus the time the frame's first chunk left the provider, estimated as
  `at` minus (chunks in the frame - 1) x chunk interval: adds the coalescing window (100 ms or
  400 characters), which is what a reader sees as the delay of the first word.

Usage, from the repository root: .venv/bin/python benchmarks/bench_stream.py [--speed 150]
PostgreSQL gets a fresh database orket_bench_<random> on postgres://postgres@127.0.0.1:5432, dropped
at the end; Redis is used at redis://127.0.0.1:6379/14 with a queue of its own. The Redis part prints
a skip line when either does not answer. Processes are always stopped (SIGINT, then SIGKILL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

from agents.providers.scripted import split_words  # noqa: E402
from agents.seed_data import DEMO_EPIC  # noqa: E402
from tests.processes import BIN, PYTHON, app_env, login_over_http, run_manage, started, wait_for_http  # noqa: E402
from tests.services import free_port, fresh_postgres_database, port_open  # noqa: E402

POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/14"
ADMIN, PASSWORD = "admin", "stream benchmark password 3"
SUBSCRIBER_COUNTS = (1, 10, 50)
WORDS_PER_CHUNK = 2  # the scripted provider's default
TEXT_KINDS = {"text", "reasoning"}
FINAL = {"succeeded", "failed", "canceled"}
RUN_TIMEOUT = 90.0
MIN_FRAMES = 200  # frames timed per configuration (over all its subscribers), for a meaningful p99
MAX_RUNS = 4
CONNECT_TIMEOUT = 15.0
SETTLE_SECONDS = 0.5  # after the last subscriber joined: every backfill is sent and read by then


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class Server:
    base_url: str
    session: httpx.Client

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://")

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(path, json=body, headers={"X-CSRFToken": self.session.cookies["csrftoken"]})
        if response.status_code != 201:
            raise RuntimeError(f"POST {path} gave {response.status_code}: {response.text[:500]}")
        return dict(response.json())


@dataclass
class Received:
    frames: list[tuple[dict[str, Any], float]]
    final_status: str | None


async def subscriber(url: str, headers: dict[str, str], ready: asyncio.Event) -> Received:
    frames: list[tuple[dict[str, Any], float]] = []
    async with ws_connect(url, additional_headers=headers, open_timeout=CONNECT_TIMEOUT, max_size=2**22) as socket:
        ready.set()
        async with asyncio.timeout(RUN_TIMEOUT):
            async for message in socket:
                arrived = time.time()
                frame = json.loads(message)
                frames.append((frame, arrived))
                if frame["kind"] == "run.status" and frame.get("status") in FINAL:
                    return Received(frames, frame["status"])
    return Received(frames, None)


async def watch_run(server: Server, run_id: int, count: int) -> tuple[list[Received], float]:
    headers = {"Cookie": f"sessionid={server.session.cookies['sessionid']}", "Origin": server.base_url}
    url = f"{server.ws_url}/ws/runs/{run_id}/?after=0"
    readies = [asyncio.Event() for _ in range(count)]
    tasks = [asyncio.create_task(subscriber(url, headers, ready)) for ready in readies]
    async with asyncio.timeout(CONNECT_TIMEOUT):
        await asyncio.gather(*(ready.wait() for ready in readies))
    joined = time.time() + SETTLE_SECONDS
    return list(await asyncio.gather(*tasks)), joined


def fresh_epic(server: Server, label: str) -> int:
    slug = f"bench-{label}-{uuid.uuid4().hex[:6]}"
    project = server.post("/api/projects/", {"name": f"Stream bench {label}", "slug": slug})
    epic = server.post(f"/api/projects/{project['id']}/import/", DEMO_EPIC)
    return int(epic["id"])


def measure(server: Server, layer: str, count: int, speed: float) -> bool:
    """Runs of the demo epic watched by `count` subscribers, until MIN_FRAMES frames were timed."""
    interval = WORDS_PER_CHUNK / speed
    from_event: list[float] = []
    from_first: list[float] = []
    runs = gaps = 0
    statuses: set[str | None] = set()
    while runs < MAX_RUNS and len(from_event) < MIN_FRAMES:
        runs += 1
        epic_id = fresh_epic(server, f"{layer}-{count}")
        run = server.post(f"/api/epics/{epic_id}/runs/", {"model_profile": "scripted-demo"})
        results, joined = asyncio.run(watch_run(server, int(run["id"]), count))
        for received in results:
            statuses.add(received.final_status)
            seqs = [frame["seq"] for frame, _ in received.frames]
            gaps += seqs != list(range(1, len(seqs) + 1))
            for frame, arrived in received.frames:
                if frame["kind"] not in TEXT_KINDS:
                    continue
                at = datetime.fromisoformat(frame["at"]).timestamp()
                if at <= joined:
                    continue  # stored before every subscriber was listening: may have come from the backfill
                chunks = len(split_words(frame["text"], WORDS_PER_CHUNK))
                from_event.append((arrived - at) * 1000)
                from_first.append((arrived - (at - (chunks - 1) * interval)) * 1000)
    if statuses != {"succeeded"} or not from_event or gaps:
        say(
            f"stream_latency {layer} subscribers={count} failed: final statuses {statuses}, "
            f"frames={len(from_event)}, subscribers with a gap or duplicate={gaps}"
        )
        return False
    say(
        f"stream_latency {layer} subscribers={count} runs={runs} frames={len(from_event)} "
        f"median_ms={statistics.median(from_event):.1f} p99_ms={percentile(from_event, 0.99):.1f} "
        f"max_ms={max(from_event):.1f} from_first_chunk_median_ms={statistics.median(from_first):.1f} "
        f"from_first_chunk_p99_ms={percentile(from_first, 0.99):.1f}"
    )
    return True


def run_all(server: Server, layer: str, speed: float) -> bool:
    ok = True
    for count in SUBSCRIBER_COUNTS:
        ok = measure(server, layer, count, speed) and ok
    return ok


@contextmanager
def embedded_server(workdir: Path, speed: float) -> Iterator[Server]:
    port = free_port()
    env = app_env(
        ORKET_DATA_DIR=str(workdir / "memory"),
        ORKET_PORT=str(port),
        ORKET_ADMIN_USER=ADMIN,
        ORKET_ADMIN_PASSWORD=PASSWORD,
        ORKET_SCRIPTED_TOKENS_PER_SECOND=str(speed),
        ORKET_LOG_LEVEL="WARNING",
    )
    with started([PYTHON, "manage.py", "orket_run"], env, workdir / "memory.log") as process:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base_url}/readyz", process=process, timeout=60)
        session = login_over_http(base_url, ADMIN, PASSWORD)
        try:
            yield Server(base_url, session)
        finally:
            session.close()


@contextmanager
def redis_servers(workdir: Path, speed: float) -> Iterator[Server]:
    with ExitStack() as stack:
        database_url = stack.enter_context(fresh_postgres_database())
        env = app_env(
            DATABASE_URL=database_url,
            REDIS_URL=REDIS_URL,
            ORKET_QUEUE=f"orket-bench-stream-{os.getpid()}",
            ORKET_DATA_DIR=str(workdir / "redis"),
            ORKET_ADMIN_USER=ADMIN,
            ORKET_ADMIN_PASSWORD=PASSWORD,
            ORKET_SCRIPTED_TOKENS_PER_SECOND=str(speed),
            ORKET_LOG_LEVEL="WARNING",
        )
        for command in (("migrate", "--noinput"), ("orket_seed",)):
            result = run_manage(env, *command)
            if result.returncode != 0:
                raise RuntimeError(result.stderr)
        port = free_port()
        worker = [
            str(BIN / "celery"),
            "-A",
            "orket_site",
            "worker",
            "--pool=solo",
            f"--hostname=bench-stream-{port}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=WARNING",
        ]
        web = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "orket_site.asgi:application"]
        stack.enter_context(started(worker, env, workdir / "worker.log"))
        process = stack.enter_context(started(web, env, workdir / "daphne.log"))
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base_url}/readyz", process=process, timeout=60)
        session = login_over_http(base_url, ADMIN, PASSWORD)
        stack.callback(session.close)
        yield Server(base_url, session)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", type=float, default=150.0, help="scripted tokens per second")
    options = parser.parse_args()
    ok = True
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="orket-bench-stream-") as directory:
        workdir = Path(directory)
        try:
            with embedded_server(workdir, options.speed) as server:
                ok = run_all(server, "memory", options.speed) and ok
            if port_open(POSTGRES_SERVER, 5432) and port_open(REDIS_URL, 6379):
                with redis_servers(workdir, options.speed) as server:
                    ok = run_all(server, "redis", options.speed) and ok
            else:
                say("stream_latency redis skipped: PostgreSQL or Redis not answering on 127.0.0.1")
        except BaseException:
            for log in sorted(workdir.glob("*.log")):
                sys.stderr.write(f"--- {log.name}\n{log.read_text()[-3000:]}\n")
            raise
    say(f"stream_latency total_seconds={time.monotonic() - began:.0f}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
