"""`run_tests` overhead per call on each isolation backend, beside a plain subprocess running the same pytest.

A card's git checkout holds a small module and 10 passing pytest tests. For each backend (bubblewrap, Docker when
an engine answers with a runner image, and the plain subprocess that the operator must allow with
ORKET_AGENT_COMMANDS_ALLOW_PLAIN=1), `sandboxes.commands.card_tests_run` runs RUNS times after one uncounted
warm-up: the checkout's state, its throwaway copy, the isolation, pytest, the summary parse and the recorded
card_tests verification. The baseline is the same pytest (the copy Orket offers at /orket/python) run by the same
interpreter as a plain `subprocess.run` in the checkout. Reports median, p95 and fastest wall time, and the
median overhead over the baseline.

Usage, from the repository root: .venv/bin/python benchmarks/bench_commands.py
Runs on the embedded default (SQLite in a temporary data folder). ORKET_BENCH_COMMAND_RUNS sets RUNS (10).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = tempfile.mkdtemp(prefix="orket-bench-commands-")
os.environ["ORKET_DATA_DIR"] = DATA
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orket_site.settings")
for name in ("DATABASE_URL", "REDIS_URL", "ORKET_ENV"):
    os.environ.pop(name, None)
os.environ.setdefault("ORKET_LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

from agents.workspaces import ProjectWorkspace, project_workspace_root  # noqa: E402
from boards import services as board_services  # noqa: E402
from boards.actors import Actor  # noqa: E402
from sandboxes import commands  # noqa: E402
from sandboxes.testsuite import suite_command  # noqa: E402

RUNS = int(os.environ.get("ORKET_BENCH_COMMAND_RUNS", "10"))
MODULE = "def add(a, b):\n    return a + b\n"
TESTS = "from calc import add\n\n" + "".join(
    f"\ndef test_add_{i}():\n    assert add({i}, {i}) == {2 * i}\n" for i in range(10)
)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def docker_ready() -> str:
    """Empty when Docker can run commands here, else why not."""
    os.environ.setdefault("ORKET_SANDBOX_RUNNER_IMAGE", "orket-test/python:bookworm")
    os.environ.setdefault("ORKET_SANDBOX_PULL", "0")
    from sandboxes.docker_backend import DockerRunner

    if not DockerRunner().available():
        return f"no Docker engine with the image {os.environ['ORKET_SANDBOX_RUNNER_IMAGE']} answers"
    return ""


def figures(label: str, walls: list[float], baseline: float | None = None) -> None:
    counted = walls[1:]
    median = statistics.median(counted)
    extra = f", overhead {median - baseline:+.0f} ms over the plain pytest" if baseline is not None else ""
    say(
        f"{label}: {len(counted)} calls: median {median:.0f} ms, p95 {percentile(counted, 0.95):.0f} ms, "
        f"fastest {min(counted):.0f} ms (first, cold: {walls[0]:.0f} ms){extra}"
    )


def main() -> int:
    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    project = board_services.project_create(name="Bench commands", creator=user)
    epic = board_services.epic_create(project=project, actor=Actor.for_user(user), name="Bench")
    card = board_services.card_create(epic=epic, actor=Actor.for_user(user), title="Adds")
    workspace = ProjectWorkspace(project_workspace_root(settings.DATA_DIR, project.pk))
    workspace.ensure()
    checkout = workspace.card_worktree(card.pk)
    (checkout / "calc.py").write_text(MODULE)
    (checkout / "test_calc.py").write_text(TESTS)
    workspace.commit_card(card.pk, seat="bench", message="calc and its tests")

    suite = suite_command(checkout)
    tools = commands._pytest_folder()
    assert suite is not None and tools is not None
    baseline_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(tools), "PYTHONDONTWRITEBYTECODE": "1"}
    walls: list[float] = []
    for _ in range(RUNS + 1):
        started = time.perf_counter()
        done = subprocess.run(list(suite.argv), cwd=checkout, env=baseline_env, capture_output=True, check=False)
        walls.append((time.perf_counter() - started) * 1000)
        if done.returncode != 0:
            say(f"plain pytest failed: {done.stdout.decode()[-500:]}")
            return 1
    figures("plain subprocess.run of the same pytest (baseline)", walls)
    baseline = statistics.median(walls[1:])

    backends: list[tuple[str, dict[str, str]]] = []
    if shutil.which("bwrap"):
        backends.append(("run_tests on bubblewrap", {"ORKET_SANDBOX_BACKEND": "local", "ORKET_BWRAP": "1"}))
    else:
        say("skip bubblewrap: bwrap is not installed")
    why_not = docker_ready()
    if why_not:
        say(f"skip docker: {why_not}")
    else:
        backends.append(("run_tests on docker", {"ORKET_SANDBOX_BACKEND": "docker"}))
    backends.append(
        (
            "run_tests on the plain subprocess (allowed)",
            {"ORKET_SANDBOX_BACKEND": "local", "ORKET_BWRAP": "0", "ORKET_AGENT_COMMANDS_ALLOW_PLAIN": "1"},
        )
    )

    failures = 0
    for label, env in backends:
        os.environ.update(env)
        walls = []
        for _ in range(RUNS + 1):
            started = time.perf_counter()
            summary = commands.card_tests_run(card=card, requested_by="bench")
            walls.append((time.perf_counter() - started) * 1000)
            if summary["status"] != "passed" or summary["passed"] != 10:
                failures += 1
                say(f"{label}: {summary['status']}: {summary['content'][-500:]}")
        figures(label, walls, baseline)
        for key in env:
            os.environ.pop(key, None)
    shutil.rmtree(DATA, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
