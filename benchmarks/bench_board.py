"""The work model under load, on SQLite and on PostgreSQL:

- board_load: GET /api/epics/{id}/board/ for an epic of 5,000 cards (with dependencies) through the
  real API stack; reports the SQL query count (also at 50 cards, to show it does not grow) and the
  median server time over several runs;
- board_selector: the selector alone (boards.selectors.epic_board);
- import: the 5,000-card epic imported from JSON through boards.services.epic_import;
- transitions: status changes per second through boards.services.card_transition.

Usage, from the repository root: .venv/bin/python benchmarks/bench_board.py
Each database runs in a child process of this script (Django settings are process-wide); the
PostgreSQL run uses a fresh database orket_bench_<random> on postgres://postgres@127.0.0.1:5432
that is dropped at the end, and is skipped with a note when the server does not answer.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.large_epic import large_epic_document  # noqa: E402
from tests.services import DEFAULT_POSTGRES_URL, fresh_postgres_database, port_open  # noqa: E402

CARDS = 5_000
SMALL = 50
RUNS = 7
TRANSITIONS = 600


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def child(label: str) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from boards import selectors, services
    from boards.actors import Actor
    from boards.models import Card

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench password 42")
    project = services.project_create(name="Bench", creator=user)
    actor = Actor.for_user(user)

    started = time.perf_counter()
    big = services.epic_import(project=project, data=large_epic_document(CARDS), actor=actor)
    say(f"import {label} cards={CARDS} seconds={time.perf_counter() - started:.2f}")
    small = services.epic_import(project=project, data=large_epic_document(SMALL), actor=actor)

    client = APIClient(HTTP_HOST="localhost")
    client.force_authenticate(user)

    def load(epic_id: int) -> tuple[int, float, int]:
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            response = client.get(f"/api/epics/{epic_id}/board/")
            elapsed = (time.perf_counter() - began) * 1000
        if response.status_code != 200:
            raise SystemExit(f"board load failed: {response.status_code} {response.content[:200]!r}")
        return len(queries), elapsed, len(response.json()["cards"])

    small_queries, _, _ = load(small.pk)
    load(big.pk)  # warm-up
    results = [load(big.pk) for _ in range(RUNS)]
    queries = {count for count, _, _ in results}
    if len(queries) != 1 or small_queries not in queries:
        raise SystemExit(f"query count is not constant: {small_queries} at {SMALL} cards, {queries} at {CARDS}")
    say(
        f"board_load {label} cards={results[0][2]} queries={results[0][0]} queries_at_{SMALL}={small_queries} "
        f"median_ms={statistics.median(t for _, t, _ in results):.1f} runs={RUNS}"
    )
    times = []
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as selector_queries:
            began = time.perf_counter()
            selectors.epic_board(big)
            times.append((time.perf_counter() - began) * 1000)
    say(
        f"board_selector {label} cards={CARDS} queries={len(selector_queries)} median_ms={statistics.median(times):.1f}"
    )

    seat = Actor.for_seat("coder", ["coder"])
    cards = list(Card.objects.filter(epic=small).order_by("rank")) + list(
        Card.objects.filter(epic=big).order_by("rank")[: TRANSITIONS // 2]
    )
    cards = cards[: TRANSITIONS // 2]
    began = time.perf_counter()
    done = 0
    for card in cards:
        for status in ("in_progress", "code_review"):
            services.card_transition(card=card, to_status=status, actor=seat, reason="bench")
            done += 1
    elapsed = time.perf_counter() - began
    say(f"transitions {label} count={done} per_second={done / elapsed:.0f} actor=agent-seat")
    person_cards = list(Card.objects.filter(epic=big, status="ready").order_by("rank")[:200])
    began = time.perf_counter()
    for card in person_cards:
        services.card_transition(card=card, to_status="in_progress", actor=actor)
    elapsed = time.perf_counter() - began
    say(f"transitions {label} count={len(person_cards)} per_second={len(person_cards) / elapsed:.0f} actor=person")


def run_child(label: str, env: dict[str, str]) -> int:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", label]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def base_env(data_dir: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="orket_site.settings",
        ORKET_DATA_DIR=data_dir,
        ORKET_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    env.pop("ORKET_ENV", None)
    return env


def bench_postgres(data_dir: str) -> int:
    if not port_open(DEFAULT_POSTGRES_URL, 5432):
        say(f"postgresql skipped: PostgreSQL is not answering at {DEFAULT_POSTGRES_URL}")
        return 0
    with fresh_postgres_database() as database_url:
        env = base_env(data_dir)
        env["DATABASE_URL"] = database_url
        return run_child("postgresql", env)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return 0
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="orket-bench-board-") as data_dir:
        sqlite_dir = Path(data_dir) / "sqlite"
        sqlite_dir.mkdir()
        failures = run_child("sqlite", base_env(str(sqlite_dir))) != 0
        pg_dir = Path(data_dir) / "postgresql"
        pg_dir.mkdir()
        failures |= bench_postgres(str(pg_dir)) != 0
    say(f"bench_board total_seconds={time.monotonic() - began:.1f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
