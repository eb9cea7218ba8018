"""Planning an epic with the architect, on SQLite and on PostgreSQL:

- plan_turn: the scripted team's planning turn (list the repository, propose a plan, validate it),
  run as the service the Celery task calls; median ms from Plan (plan_request) to a draft, and of the
  turn alone (plan_turn_only: plan_request's choice of the model profile may probe a local Ollama);
- plan_via_worker: the same through the embedded Celery worker, as the Plan button does it (the task
  is queued after commit; the figure includes the queue hop); median ms from Plan to draft ready;
- accept: Accept of a 50-card plan (with dependencies) through agents.planning.plan_accept, which
  validates it and creates the cards through boards' import service; median ms;
- board_after_accept: the board API (GET /api/epics/{id}/board/) for the new 50 cards right after
  Accept, the data the board paints from; median server ms.

Usage, from the repository root: .venv/bin/python benchmarks/bench_planning.py
Each database runs in a child process; PostgreSQL uses a fresh database that is dropped afterwards and
is skipped with a note when the server does not answer.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_board import base_env  # noqa: E402
from tests.services import DEFAULT_POSTGRES_URL, fresh_postgres_database, port_open  # noqa: E402

RUNS = 9
PLAN_CARDS = 50
SEATS = ("lead_architect", "senior_developer", "quality_assurance")
DESCRIPTION = "\n".join(f"- Build part {number} of the tool" for number in range(1, 6))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def plan_document(count: int) -> dict[str, object]:
    cards = []
    for index in range(count):
        card: dict[str, object] = {
            "id": f"c{index + 1}",
            "summary": f"Planned card {index + 1}",
            "seat": SEATS[index % 3],
            "priority": ("high", "medium", "low")[index % 3],
            "description": "A card of the benchmark plan. " * 4,
            "acceptance_criteria": "It works; it has a test.",
        }
        if index % 10:
            card["depends_on"] = [f"c{index}"]
        cards.append(card)
    return {"cards": cards}


def child(label: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from agents import planning
    from agents.models import EpicPlan, PlanStatus
    from boards import services
    from boards.actors import Actor
    from boards.models import Card
    from orket_site.seed import seed_first_run
    from tests.agents.engine_support import worker_thread

    call_command("migrate", verbosity=0)
    seed_first_run()
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="admin")
    project = services.project_create(name="Bench planning", creator=user, require_verification=False)
    actor = Actor.for_user(user)

    def new_epic(number: int) -> object:
        return services.epic_create(
            project=project, actor=actor, name=f"Epic {number}", description=DESCRIPTION, team="standard"
        )

    times, turn_times = [], []
    for number in range(RUNS):
        epic = new_epic(number)
        began = time.perf_counter()
        plan = planning.plan_request(epic=epic, user=user)
        turn_began = time.perf_counter()
        drafted = planning.plan_draft(plan_id=plan.pk)
        ended = time.perf_counter()
        times.append((ended - began) * 1000)
        turn_times.append((ended - turn_began) * 1000)
        assert drafted is not None and drafted.status == PlanStatus.DRAFT, drafted and drafted.error
    cards = len(drafted.document["cards"])
    say(f"plan_turn {label} cards={cards} median_ms={statistics.median(times):.1f} runs={RUNS}")
    # plan_request resolves the model profile, which may ask a local Ollama whether it answers.
    say(f"plan_turn_only {label} cards={cards} median_ms={statistics.median(turn_times):.1f} runs={RUNS}")

    times = []
    with worker_thread():
        for number in range(RUNS):
            epic = new_epic(100 + number)
            began = time.perf_counter()
            plan = planning.plan_request(epic=epic, user=user)
            deadline = time.monotonic() + 30
            while EpicPlan.objects.filter(pk=plan.pk, status=PlanStatus.DRAFTING).exists():
                if time.monotonic() > deadline:
                    raise SystemExit(f"plan {plan.pk} was not drafted within 30 s")
                time.sleep(0.002)
            times.append((time.perf_counter() - began) * 1000)
    say(f"plan_via_worker {label} median_ms={statistics.median(times):.1f} runs={RUNS}")

    accept_times, board_times = [], []
    client = APIClient(HTTP_HOST="localhost")
    client.force_authenticate(user)
    for number in range(RUNS):
        epic = new_epic(200 + number)
        document = plan_document(PLAN_CARDS)
        plan = EpicPlan.objects.create(
            project=project, epic=epic, status=PlanStatus.DRAFT, document=document, proposed=document, requested_by=user
        )
        began = time.perf_counter()
        planning.plan_accept(plan=plan, user=user)
        accept_times.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        response = client.get(f"/api/epics/{epic.pk}/board/")
        board_times.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200 or len(response.json()["cards"]) != PLAN_CARDS:
            raise SystemExit(f"the board does not show the {PLAN_CARDS} new cards: {response.status_code}")
        assert Card.objects.filter(epic=epic).count() == PLAN_CARDS
    say(f"accept {label} cards={PLAN_CARDS} median_ms={statistics.median(accept_times):.1f} runs={RUNS}")
    say(f"board_after_accept {label} cards={PLAN_CARDS} median_ms={statistics.median(board_times):.1f} runs={RUNS}")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return 0
    began = time.monotonic()
    failures = False
    with tempfile.TemporaryDirectory(prefix="orket-bench-planning-") as data_dir:
        sqlite_dir = Path(data_dir) / "sqlite"
        sqlite_dir.mkdir()
        failures |= run_child_here("sqlite", base_env(str(sqlite_dir))) != 0
        if port_open(DEFAULT_POSTGRES_URL, 5432):
            pg_dir = Path(data_dir) / "postgresql"
            pg_dir.mkdir()
            with fresh_postgres_database() as database_url:
                env = base_env(str(pg_dir))
                env["DATABASE_URL"] = database_url
                failures |= run_child_here("postgresql", env) != 0
        else:
            say(f"postgresql skipped: PostgreSQL is not answering at {DEFAULT_POSTGRES_URL}")
    say(f"bench_planning total_seconds={time.monotonic() - began:.1f}")
    return 1 if failures else 0


def run_child_here(label: str, env: dict[str, str]) -> int:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", label]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
