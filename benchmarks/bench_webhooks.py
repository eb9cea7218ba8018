"""Gitea webhook acknowledgement: latency (median, p99) of POST /hooks/gitea/<project>/ and deliveries
accepted per second, on the embedded default (SQLite, one process with its worker thread) and on
PostgreSQL plus Redis (daphne and a Celery worker), with a mix of valid, duplicate (same delivery id,
and Gitea's Replay: same body, new id) and badly signed deliveries.

Usage: .venv/bin/python benchmarks/bench_webhooks.py [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.processes import BIN, PYTHON, app_env, run_manage, started, wait_for_http  # noqa: E402
from tests.services import (  # noqa: E402
    DEFAULT_POSTGRES_URL,
    DEFAULT_REDIS_URL,
    free_port,
    fresh_postgres_database,
    port_open,
)

# The demo project linked to bench/hooks, with pull request #999 belonging to its first card, so that
# accepted deliveries are really processed (each review comment becomes a card comment).
LINK_SCRIPT = """
from agents.gitea.models import PullRequestLink
from agents.gitea.services import gitea_link_save
from boards.models import Card, Project
project = Project.objects.get(slug="demo")
saved = gitea_link_save(project=project, base_url="http://127.0.0.1:9", owner="bench", repo="hooks",
                        token="unused", regenerate_secret=True)
card = Card.objects.filter(project=project).order_by("id").first()
PullRequestLink.objects.get_or_create(project=project, number=999, defaults={"card": card, "head_branch": "card/1"})
print("SECRET", project.pk, saved.new_secret)
"""


def payload(n: int) -> bytes:
    """A review comment on pull request #999 (processing adds it to the card), about the size of a real
    Gitea payload."""
    user = {"id": 1, "login": "alice", "username": "alice", "full_name": "Alice", "email": "a@example.com"}
    repo = {"id": 7, "name": "hooks", "full_name": "bench/hooks", "owner": user, "html_url": "http://g/bench/hooks"}
    pull = {
        "id": 1000 + n,
        "number": 999,
        "title": "Card #1: something",
        "body": "x" * 2000,
        "state": "open",
        "user": user,
        "head": {"ref": "card/1", "sha": hashlib.sha256(str(n).encode()).hexdigest()[:40]},
        "base": {"ref": "main", "sha": "0" * 40},
        "html_url": "http://g/bench/hooks/pulls/999",
    }
    data = {
        "action": "reviewed",
        "number": 999,
        "pull_request": pull,
        "repository": repo,
        "sender": user,
        "review": {"type": "pull_request_review_comment", "content": f"comment {n}"},
    }
    return json.dumps(data).encode()


def headers_for(secret: str, body: bytes, delivery: str) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    event, kind = "pull_request_comment", "pull_request_review_comment"
    return {
        "Content-Type": "application/json",
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Event": event,
        "X-Gitea-Event-Type": kind,
        "X-Gitea-Signature": signature,
        "X-Gogs-Delivery": delivery,
        "X-Gogs-Event": event,
        "X-Gogs-Signature": signature,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "X-Hub-Signature-256": f"sha256={signature}",
    }


def plan(total: int, secret: str, seed: int, first: int = 0) -> list[tuple[str, bytes, dict[str, str]]]:
    """70% valid, 10% the same delivery again, 10% replays (new id), 10% badly signed. Payloads are
    numbered from `first`, so two plans never share a valid delivery."""
    rng = random.Random(seed)
    sent: list[tuple[bytes, str]] = []
    requests: list[tuple[str, bytes, dict[str, str]]] = []
    for n in range(first, first + total):
        roll = rng.random()
        if sent and roll < 0.10:
            body, delivery = rng.choice(sent)
            requests.append(("duplicate", body, headers_for(secret, body, delivery)))
        elif sent and roll < 0.20:
            body, _ = rng.choice(sent)
            requests.append(("replay", body, headers_for(secret, body, str(uuid.uuid4()))))
        elif roll < 0.30:
            body = payload(n)
            requests.append(("bad_signature", body, headers_for("wrong-secret", body, str(uuid.uuid4()))))
        else:
            body, delivery = payload(n), str(uuid.uuid4())
            sent.append((body, delivery))
            requests.append(("valid", body, headers_for(secret, body, delivery)))
    return requests


async def hammer(
    base_url: str, path: str, requests: list[tuple[str, bytes, dict[str, str]]], concurrency: int
) -> tuple[list[float], Counter[str], float]:
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    accepted_by_delivery: Counter[str] = Counter()
    queue = iter(requests)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def one_client() -> None:
            for kind, body, headers in queue:
                began = time.perf_counter()
                response = await client.post(path, content=body, headers=headers)
                latencies.append((time.perf_counter() - began) * 1000)
                answers[f"{kind}:{response.status_code}"] += 1
                if kind in ("valid", "duplicate"):
                    accepted_by_delivery[headers["X-Gitea-Delivery"]] += response.status_code == 202

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    not_once = sum(count != 1 for count in accepted_by_delivery.values())
    answers["delivery_not_accepted_once"] = not_once
    return latencies, answers, elapsed


def measure(label: str, base_url: str, project: str, secret: str, total: int, concurrency: int) -> None:
    path = f"/hooks/gitea/{project}/"
    asyncio.run(hammer(base_url, path, plan(min(100, total), secret, seed=1), concurrency))  # warm-up
    requests = plan(total, secret, seed=2, first=1_000_000)
    latencies, answers, elapsed = asyncio.run(hammer(base_url, path, requests, concurrency))
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    accepted = answers.get("valid:202", 0) + answers.get("duplicate:202", 0)
    not_once = answers.pop("delivery_not_accepted_once")
    # A delivery and its resend (same id) race when sent at once: whichever arrives first is
    # accepted (202) and the other answered 200, so the rule is per delivery id: accepted once.
    # A replay (new id) sent while its original is in flight passes the door (202) and is dropped
    # by the event key when processed. Anything else is unexpected.
    expected = ("valid:202", "valid:200", "duplicate:200", "duplicate:202", "replay:200", "replay:202")
    unexpected = {key: count for key, count in answers.items() if key not in (*expected, "bad_signature:401")}
    if not_once:
        unexpected["delivery_not_accepted_once"] = not_once
    sys.stdout.write(
        f"gitea_webhook {label} requests={total} concurrency={concurrency} "
        f"median_ms={statistics.median(latencies):.1f} p99_ms={p99:.1f} "
        f"requests_per_s={total / elapsed:.0f} accepted_per_s={accepted / elapsed:.0f} "
        f"mix={dict(sorted(answers.items()))} unexpected={unexpected}\n"
    )
    sys.stdout.flush()


def link_project(env: dict[str, str]) -> tuple[str, str]:
    result = run_manage(env, "shell", "-c", LINK_SCRIPT)
    line = next((x for x in result.stdout.splitlines() if x.startswith("SECRET ")), "")
    if not line:
        raise RuntimeError(f"linking the demo project failed: {result.stderr[-2000:]}")
    _, project, secret = line.split()
    return project, secret


def bench_embedded(total: int, concurrency: int, workdir: Path) -> None:
    port = free_port()
    env = app_env(ORKET_DATA_DIR=str(workdir / "embedded"), ORKET_PORT=str(port), ORKET_LOG_LEVEL="WARNING")
    with started([PYTHON, "manage.py", "orket_run"], env, workdir / "embedded.log") as server:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base_url}/readyz", process=server, timeout=60)
        project, secret = link_project(env)
        measure("embedded-sqlite", base_url, project, secret, total, concurrency)


def bench_postgres(total: int, concurrency: int, workdir: Path) -> None:
    if not (port_open(DEFAULT_POSTGRES_URL, 5432) and port_open(DEFAULT_REDIS_URL, 6379)):
        sys.stdout.write("gitea_webhook postgres-redis skipped: PostgreSQL or Redis not answering on 127.0.0.1\n")
        return
    with fresh_postgres_database() as database_url:
        port = free_port()
        env = app_env(
            DATABASE_URL=database_url,
            REDIS_URL=DEFAULT_REDIS_URL.rsplit("/", 1)[0] + "/11",
            ORKET_DATA_DIR=str(workdir / "pg"),
            ORKET_LOG_LEVEL="WARNING",
            ORKET_QUEUE=f"bench-{database_url.rsplit('/', 1)[1]}",
        )
        for command in (("migrate", "--noinput"), ("orket_seed",)):
            result = run_manage(env, *command)
            if result.returncode != 0:
                raise RuntimeError(result.stderr)
        project, secret = link_project(env)
        daphne = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "orket_site.asgi:application"]
        worker = [str(BIN / "celery"), "-A", "orket_site", "worker", "--pool=solo", "--loglevel=WARNING"]
        with started(daphne, env, workdir / "pg.log") as server, started(worker, env, workdir / "worker.log"):
            base_url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base_url}/readyz", process=server, timeout=60)
            measure("postgres-redis", base_url, project, secret, total, concurrency)


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
