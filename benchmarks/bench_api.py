"""Request throughput and latency of an authenticated GET /api/projects/ under daphne, on the
embedded default (SQLite, one process) and on PostgreSQL plus Redis.

Usage: .venv/bin/python benchmarks/bench_api.py [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.processes import BIN, PYTHON, app_env, run_manage, started, wait_for_http  # noqa: E402
from tests.services import DEFAULT_POSTGRES_URL, DEFAULT_REDIS_URL, free_port, fresh_postgres_database, port_open  # noqa: E402

PASSWORD = "benchmark password 42"


async def hammer(base_url: str, token: str, total: int, concurrency: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    remaining = iter(range(total))
    headers = {"Authorization": f"Token {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30) as client:

        async def one_client() -> None:
            nonlocal errors
            for _ in remaining:
                started_at = time.perf_counter()
                response = await client.get("/api/projects/")
                latencies.append((time.perf_counter() - started_at) * 1000)
                if response.status_code != 200:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return latencies, errors, elapsed


def measure(label: str, base_url: str, token: str, total: int, concurrency: int) -> None:
    asyncio.run(hammer(base_url, token, min(100, total), concurrency))  # warm-up
    latencies, errors, elapsed = asyncio.run(hammer(base_url, token, total, concurrency))
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    sys.stdout.write(
        f"api_projects_list {label} requests={total} concurrency={concurrency} "
        f"throughput_rps={total / elapsed:.0f} median_ms={statistics.median(latencies):.1f} "
        f"p95_ms={p95:.1f} errors={errors}\n"
    )
    sys.stdout.flush()


def token_for(base_url: str) -> str:
    response = httpx.post(f"{base_url}/api/auth/token/", json={"username": "admin", "password": PASSWORD})
    response.raise_for_status()
    return str(response.json()["token"])


def bench_embedded(total: int, concurrency: int, workdir: Path) -> None:
    port = free_port()
    env = app_env(
        ORKET_DATA_DIR=str(workdir / "embedded"),
        ORKET_PORT=str(port),
        ORKET_ADMIN_PASSWORD=PASSWORD,
        ORKET_LOG_LEVEL="WARNING",
    )
    with started([PYTHON, "manage.py", "orket_run"], env, workdir / "embedded.log") as server:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base_url}/readyz", process=server, timeout=60)
        measure("embedded-sqlite", base_url, token_for(base_url), total, concurrency)


def bench_postgres(total: int, concurrency: int, workdir: Path) -> None:
    if not (port_open(DEFAULT_POSTGRES_URL, 5432) and port_open(DEFAULT_REDIS_URL, 6379)):
        sys.stdout.write("api_projects_list postgres-redis skipped: PostgreSQL or Redis not answering on 127.0.0.1\n")
        return
    with fresh_postgres_database() as database_url:
        port = free_port()
        env = app_env(
            DATABASE_URL=database_url,
            REDIS_URL=DEFAULT_REDIS_URL.rsplit("/", 1)[0] + "/10",
            ORKET_DATA_DIR=str(workdir / "pg"),
            ORKET_ADMIN_PASSWORD=PASSWORD,
            ORKET_LOG_LEVEL="WARNING",
        )
        for command in (("migrate", "--noinput"), ("orket_seed",)):
            result = run_manage(env, *command)
            if result.returncode != 0:
                raise RuntimeError(result.stderr)
        args = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "orket_site.asgi:application"]
        with started(args, env, workdir / "pg.log") as server:
            base_url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base_url}/readyz", process=server, timeout=60)
            measure("postgres-redis", base_url, token_for(base_url), total, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orket-bench-") as workdir:
        bench_embedded(options.requests, options.concurrency, Path(workdir))
        bench_postgres(options.requests, options.concurrency, Path(workdir))


if __name__ == "__main__":
    main()
