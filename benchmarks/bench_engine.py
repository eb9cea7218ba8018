"""The agent engine under load, with the scripted provider:

- engine_overhead: an epic of 20 independent cards run to success with the scripted provider at
  unlimited speed, one turn at a time (max_parallel=1); reports the median and 95th percentile of
  Turn.duration_ms (the engine's own work per turn: prompt, parsing, tools, git, database), the
  median gap between one turn finishing and the next starting (Celery round trip plus run_advance),
  and the run's wall time; then the engine time per step (TurnStep.engine_ms: everything a step
  does outside waiting for the model), median and 95th percentile, the steps per turn, and the
  median part of a turn's duration outside its steps (claiming, the prompt, the hand-off). On the
  embedded default (SQLite file, in-memory broker, a Celery worker thread in the benchmark process)
  and on PostgreSQL plus Redis (one `celery worker --pool=solo` process). On the embedded default,
  whose worker runs in the benchmark's process, also where that time goes (agents.phase_timer): per
  step, per turn and per run_advance, each phase (claim, prompt, model, parse, gate, each tool, git,
  database, events, publish, finish, after_turn, dispatch) with its median and 95th percentile
  milliseconds and its share of the wall time.
- makespan: a wide dependency graph of 40 cards (a root, six parallel chains, a fan-in) run with 1, 2
  and 4 worker processes on PostgreSQL plus Redis (max_parallel = workers), the scripted provider
  streaming at ORKET_SCRIPTED_TOKENS_PER_SECOND=400 so turns take measurable time; reports the
  makespan against its lower bound, the larger of the critical path (the longest dependency chain
  of summed turn durations per card) and the total turn time divided by the worker count.

Usage, from the repository root: .venv/bin/python benchmarks/bench_engine.py
Each part runs its Django work in a child process (settings are process-wide). PostgreSQL gets a
fresh database orket_bench_<random> on postgres://postgres@127.0.0.1:5432, dropped at the end;
Redis is used at redis://127.0.0.1:6379/11 with a queue of its own (orket-bench-<pid>). Parts
needing them print a skip line when either does not answer. Exits non-zero when any run does not
succeed.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.processes import BIN, PYTHON, app_env, run_manage  # noqa: E402
from tests.services import DEFAULT_POSTGRES_URL, fresh_postgres_database, port_open  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/11"
QUEUE = f"orket-bench-{os.getpid()}"
OVERHEAD_CARDS = 20
CHAIN_LENGTHS = (7, 7, 6, 6, 6, 6)  # plus a root and a fan-in: 40 cards
SCRIPTED_SPEED = "400"
WORKER_COUNTS = (1, 2, 4)
OVERHEAD_TIMEOUT = 90.0
MAKESPAN_TIMEOUT = 150.0
WORKER_READY_TIMEOUT = 45.0


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# Epics
# ---------------------------------------------------------------------------------------------


def card(local_id: str, depends_on: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": local_id,
        "summary": f"Bench card {local_id}",
        "seat": "senior_developer",
        "description": "A benchmark card: a small service module and its unit test.",
        "depends_on": depends_on or [],
    }


def independent_epic(count: int) -> dict[str, Any]:
    # More cards than the default complexity threshold: architecture governance must be on.
    return {
        "name": f"Bench: {count} independent cards",
        "team": "standard",
        "architecture_governance": {"idesign": True},
        "cards": [card(f"c{index + 1}") for index in range(count)],
    }


def wide_epic() -> dict[str, Any]:
    cards = [card("root")]
    ends = []
    for chain, length in enumerate(CHAIN_LENGTHS, start=1):
        previous = "root"
        for step in range(1, length + 1):
            local = f"ch{chain}-{step}"
            cards.append(card(local, [previous]))
            previous = local
        ends.append(previous)
    cards.append(card("fan-in", ends))
    return {
        "name": f"Bench: wide graph of {len(cards)} cards",
        "team": "standard",
        "architecture_governance": {"idesign": True},
        "cards": cards,
    }


# ---------------------------------------------------------------------------------------------
# Child processes (Django configured from the environment)
# ---------------------------------------------------------------------------------------------


def percentile(values: list[int], fraction: float) -> int:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def wait_for_workers(count: int, timeout: float) -> None:
    from orket_site.celery import app as celery_app

    deadline = time.monotonic() + timeout
    prefix = f"bench-{os.environ['ORKET_BENCH_PARENT']}-"
    seen: set[str] = set()
    while time.monotonic() < deadline:
        replies = celery_app.control.ping(timeout=1.0) or []
        seen = {name for reply in replies for name in reply if name.startswith(prefix)}
        if len(seen) >= count:
            return
    raise SystemExit(f"only {len(seen)} of {count} Celery workers answered within {timeout:.0f} s")


def run_epic(label: str, document: dict[str, Any], max_parallel: int, timeout: float) -> tuple[Any, float, bool]:
    """Import the epic into a fresh project, run it, wait; returns (run, wall seconds, succeeded)."""
    from agents import services as agent_services
    from agents.models import ModelProfile, Run, RunEvent, Turn
    from boards import services
    from boards.actors import Actor
    from boards.models import Card

    project = services.project_create(
        name=f"Bench {label} {uuid.uuid4().hex[:6]}", creator=None, require_verification=False
    )
    epic = services.epic_import(project=project, data=document, actor=Actor.orket("bench"))
    profile = ModelProfile.objects.get(name="scripted-demo")
    began = time.monotonic()
    run = agent_services.run_start(epic=epic, profile=profile, max_parallel=max_parallel)
    deadline = began + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run.pk)
        if run.is_final:
            break
        time.sleep(0.05)
    wall = time.monotonic() - began
    if not run.is_final:
        agent_services.run_cancel(run=run)
        say(f"FAILED {label}: run {run.pk} still {run.status} after {timeout:.0f} s (cancel requested)")
        return run, wall, False
    problems = list(
        RunEvent.objects.filter(
            run=run, kind__in=["tool.refused", "tool.error", "card.blocked", "parse.problem", "model.retry"]
        ).values_list("kind", "card_id", "data")[:5]
    )
    statuses = set(Card.objects.filter(epic=epic).values_list("status", flat=True))
    bad_turns = Turn.objects.filter(run=run).exclude(status="succeeded").count()
    succeeded = run.status == "succeeded" and statuses == {"done"}
    if not succeeded:
        say(f"FAILED {label}: run {run.pk} {run.status}: {run.status_reason} card statuses={sorted(statuses)}")
    if problems or bad_turns:
        say(f"note {label}: turns not succeeded={bad_turns} first problem events={problems}")
    return run, wall, succeeded


def child_overhead(label: str) -> int:
    import django

    django.setup()
    from django.conf import settings

    from agents.models import Turn

    embedded = settings.EMBEDDED
    if embedded:
        from django.core.management import call_command

        from orket_site.seed import seed_first_run

        call_command("migrate", verbosity=0)
        seed_first_run()
    else:
        wait_for_workers(1, WORKER_READY_TIMEOUT)

    def measured() -> tuple[Any, float, bool]:
        return run_epic(label, independent_epic(OVERHEAD_CARDS), 1, OVERHEAD_TIMEOUT)

    if embedded:
        from agents import phase_timer
        from tests.agents.engine_support import worker_thread

        # The worker is a thread of this process, so its phases are recorded here.
        phase_timer.enable()
        with worker_thread():
            run, wall, ok = measured()
        phase_timer.disable()
    else:
        run, wall, ok = measured()
    turns = list(Turn.objects.filter(run=run, status="succeeded").order_by("started_at", "id"))
    durations = [turn.duration_ms for turn in turns if turn.duration_ms is not None]
    if not durations:
        say(f"FAILED {label}: no turn finished")
        return 1
    # With max_parallel=1 the turns run one after another: the gap between one finishing and the next
    # starting is the dispatch path (turn task done -> run_advance task -> turn_execute task).
    gaps = [
        (later.started_at - earlier.finished_at).total_seconds() * 1000 for earlier, later in itertools.pairwise(turns)
    ]
    first = (turns[0].started_at - run.created_at).total_seconds() * 1000
    say(
        f"engine_overhead {label} cards={OVERHEAD_CARDS} turns={len(turns)} "
        f"median_ms={statistics.median(durations):.0f} p95_ms={percentile(durations, 0.95)} "
        f"max_ms={max(durations)} dispatch_gap_median_ms={statistics.median(gaps):.0f} "
        f"first_turn_after_ms={first:.0f} run_wall_s={wall:.2f} "
        f"per_turn_wall_ms={wall * 1000 / len(turns):.0f} status={run.status}"
    )
    say(engine_step_line(label, turns))
    if embedded:
        for line in phase_lines(label, phase_timer.take()):
            say(line)
    return 0 if ok else 1


def phase_lines(label: str, samples: list[Any]) -> list[str]:
    """Per sample kind (step: one TurnStep from its limit checks to its events; turn: claim to
    dispatch, steps included; advance: one run_advance), the wall time and, per phase, the median and
    95th percentile of its own milliseconds per sample (nested phases excluded, so a query inside an
    event counts as database), its share of all samples' wall time, how often it was entered per
    sample, and its inclusive median (nested phases included). "unattributed" is wall time outside
    every phase (Python between phases, transaction commits, lease threads)."""
    lines = []
    for kind in ("step", "turn", "advance"):
        chosen = [item for item in samples if item.kind == kind]
        if not chosen:
            lines.append(f"engine_phases {label} per={kind} samples=0")
            continue
        walls = [item.wall * 1000 for item in chosen]
        total = sum(walls)
        lines.append(
            f"engine_phases {label} per={kind} samples={len(chosen)} wall_ms_median={statistics.median(walls):.1f} "
            f"wall_ms_p95={percentile_float(walls, 0.95):.1f}"
        )
        names = sorted(
            {name for item in chosen for name in item.own}, key=lambda n: -sum(i.own.get(n, 0) for i in chosen)
        )
        rows = [(name, [item.own.get(name, 0.0) * 1000 for item in chosen]) for name in names]
        rows.append(("unattributed", [(item.wall - sum(item.own.values())) * 1000 for item in chosen]))
        for name, own in rows:
            entered = [item.count.get(name, 0) for item in chosen]
            inclusive = [item.inclusive.get(name, 0.0) * 1000 for item in chosen]
            lines.append(
                f"  phase {kind} {name:<24} own_ms_median={statistics.median(own):7.2f} "
                f"own_ms_p95={percentile_float(own, 0.95):7.2f} share={100 * sum(own) / total:5.1f}% "
                f"entered_per_{kind}={statistics.mean(entered):5.1f} "
                f"inclusive_ms_median={statistics.median(inclusive) if name != 'unattributed' else 0:7.2f}"
            )
    return lines


def percentile_float(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def engine_step_line(label: str, turns: list[Any]) -> str:
    """Engine time per step (TurnStep.engine_ms: parsing, gate, tools, git commit, database writes,
    events; not the model) and how much of a turn's duration lies outside its steps."""
    from agents.models import TurnStep

    steps = list(TurnStep.objects.filter(turn__in=turns).values("turn_id", "engine_ms", "model_ms"))
    engine = [step["engine_ms"] for step in steps if step["engine_ms"] is not None]
    if not engine:
        return f"FAILED engine_step {label}: no step recorded engine_ms"
    per_turn: dict[int, list[dict[str, Any]]] = {}
    for step in steps:
        per_turn.setdefault(step["turn_id"], []).append(step)
    counts = [len(per_turn.get(turn.pk, [])) for turn in turns]
    outside = [
        turn.duration_ms - sum((s["engine_ms"] or 0) + (s["model_ms"] or 0) for s in per_turn.get(turn.pk, []))
        for turn in turns
        if turn.duration_ms is not None
    ]
    return (
        f"engine_step {label} steps={len(engine)} steps_per_turn_median={statistics.median(counts):.0f} "
        f"steps_per_turn_mean={statistics.mean(counts):.2f} engine_ms_median={statistics.median(engine):.0f} "
        f"engine_ms_p95={percentile(engine, 0.95)} engine_ms_max={max(engine)} "
        f"model_ms_median={statistics.median([s['model_ms'] or 0 for s in steps]):.0f} "
        f"turn_outside_steps_median_ms={statistics.median(outside):.0f}"
    )


def child_makespan(label: str, workers: int) -> int:
    import django

    django.setup()
    from agents.models import Turn
    from boards.models import CardDependency

    wait_for_workers(workers, WORKER_READY_TIMEOUT)
    run, wall, ok = run_epic(label, wide_epic(), workers, MAKESPAN_TIMEOUT)
    turns = list(Turn.objects.filter(run=run).values("card_id", "duration_ms", "status"))
    work: dict[int, float] = {}
    for turn in turns:
        work[turn["card_id"]] = work.get(turn["card_id"], 0.0) + (turn["duration_ms"] or 0) / 1000
    depends: dict[int, list[int]] = {}
    for card_id, depends_on in CardDependency.objects.filter(card__epic=run.epic_id).values_list(
        "card_id", "depends_on_id"
    ):
        depends.setdefault(card_id, []).append(depends_on)
    finish: dict[int, float] = {}

    def longest(card_id: int) -> float:
        if card_id not in finish:
            finish[card_id] = work.get(card_id, 0.0) + max((longest(d) for d in depends.get(card_id, [])), default=0)
        return finish[card_id]

    cards = list(run.epic.cards.values_list("pk", flat=True))
    critical = max(longest(card_id) for card_id in cards)
    total = sum(work.values())
    bound = max(critical, total / workers)
    makespan = (run.finished_at - run.created_at).total_seconds() if run.finished_at else wall
    say(
        f"makespan {label} workers={workers} cards={len(cards)} turns={len(turns)} "
        f"median_turn_ms={statistics.median([t['duration_ms'] or 0 for t in turns]):.0f} "
        f"makespan_s={makespan:.2f} critical_path_s={critical:.2f} work_per_worker_s={total / workers:.2f} "
        f"lower_bound_s={bound:.2f} ratio={makespan / bound:.2f} status={run.status}"
    )
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------
# The parent: processes, databases, clean-up
# ---------------------------------------------------------------------------------------------


class Workers:
    """Celery worker processes, each in its own process group, always stopped."""

    def __init__(self, env: dict[str, str], logdir: Path, tag: str) -> None:
        self.env, self.logdir, self.tag = env, logdir, tag
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, count: int) -> None:
        for _ in range(count):
            index = len(self.logs) + 1
            name = f"bench-{os.getpid()}-{self.tag}-{index}@%h"
            self.logs.append(self.logdir / f"worker-{self.tag}-{index}.log")
            log = self.logs[-1].open("wb")
            args = [str(BIN / "celery"), "-A", "orket_site", "worker", "--pool=solo", "--concurrency=1"]
            args += ["-Q", QUEUE, "-n", name, "--without-heartbeat", "--without-mingle", "--without-gossip"]
            args += ["--loglevel=WARNING"]
            self.processes.append(
                subprocess.Popen(
                    args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            log.close()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.processes = []


def run_child(args: list[str], env: dict[str, str], timeout: float) -> int:
    command = [PYTHON, str(Path(__file__).resolve()), "--child", *args]
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        say(f"FAILED {' '.join(args)}: child did not finish within {timeout:.0f} s; killed")
        return 1
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def bench_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = app_env(
        ORKET_DATA_DIR=str(data_dir),
        ORKET_LOG_LEVEL="WARNING",
        ORKET_BENCH_PARENT=str(os.getpid()),
        PYTHONPATH=str(ROOT),
        **extra,
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    return env


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def bench_postgres(workdir: Path) -> int:
    if not port_open(DEFAULT_POSTGRES_URL, 5432) or not port_open(REDIS_URL, 6379):
        say("engine_overhead postgres-redis skipped: PostgreSQL or Redis is not answering on 127.0.0.1")
        say("makespan postgres-redis skipped: PostgreSQL or Redis is not answering on 127.0.0.1")
        return 0
    with fresh_postgres_database() as database_url:
        try:
            return run_postgres_scenarios(workdir, database_url)
        finally:
            clear_redis()


def run_postgres_scenarios(workdir: Path, database_url: str) -> int:
    common = {"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "ORKET_QUEUE": QUEUE}
    env = bench_env(workdir / "pg", **common)
    for command in (("migrate", "--noinput"), ("orket_seed",)):
        result = run_manage(env, *command, timeout=120)
        if result.returncode != 0:
            say(f"FAILED postgres-redis setup: manage.py {' '.join(command)}: {result.stderr[-1500:]}")
            return 1
    scenarios: list[tuple[str, list[str], int, str]] = [("postgres-redis", ["overhead"], 1, "0")]
    scenarios += [("postgres-redis", ["makespan", str(n)], n, SCRIPTED_SPEED) for n in WORKER_COUNTS]
    failures = 0
    for label, args, count, speed in scenarios:
        env = bench_env(workdir / "pg", **common, ORKET_SCRIPTED_TOKENS_PER_SECOND=speed)
        workers = Workers(env, workdir, "-".join(args))
        try:
            workers.start(count)
            timeout = (OVERHEAD_TIMEOUT if args[0] == "overhead" else MAKESPAN_TIMEOUT) + 60
            code = run_child([*args, label], env, timeout)
        finally:
            workers.stop()
        if code != 0:
            failures += 1
            for log in workers.logs:
                say(f"{log.name} (tail):\n{tail(log)}")
    return failures


def clear_redis() -> None:
    """Remove this benchmark's queue (and its bindings) from the dedicated Redis database."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=3)
        keys = list(client.scan_iter(match=f"*{QUEUE}*"))
        if keys:
            client.delete(*keys)
    except Exception as error:
        say(f"note: could not clean Redis keys of {QUEUE}: {error}")


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        if sys.argv[2] == "overhead":
            return child_overhead(sys.argv[3])
        if sys.argv[2] == "makespan":
            return child_makespan(sys.argv[4], int(sys.argv[3]))
        raise SystemExit(f"unknown child {sys.argv[2:]}")
    began = time.monotonic()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="orket-bench-engine-") as tmp:
        workdir = Path(tmp)
        env = bench_env(workdir / "embedded", ORKET_SCRIPTED_TOKENS_PER_SECOND="0")
        failures += run_child(["overhead", "embedded-sqlite"], env, OVERHEAD_TIMEOUT + 60) != 0
        failures += bench_postgres(workdir)
    say(f"bench_engine total_seconds={time.monotonic() - began:.1f} failures={failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
