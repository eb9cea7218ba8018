"""Time from request to a finished verification run, per isolation backend.

For each backend (the local one with bubblewrap, the local plain subprocess, and Docker when an engine
answers with a runner image), a card with a 10-scenario fixture and a small solution module is
verified RUNS times: `verification_start` (the row, as the API's POST makes it) then
`verification_run` (what the Celery task does: start the isolation, run the scenarios, grade, store,
set the card's result). Reports the median, 95th percentile and fastest wall time of that, after one
uncounted warm-up run. The broker hop is left out: it is the same for every backend.

Usage, from the repository root: .venv/bin/python benchmarks/bench_verification.py
Runs on the embedded default (SQLite in a temporary data folder). Docker uses ORKET_SANDBOX_RUNNER_IMAGE
(default: the test image orket-test/python:bookworm) and is skipped with a line when none answers.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = tempfile.mkdtemp(prefix="orket-bench-verify-")
os.environ["ORKET_DATA_DIR"] = DATA
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orket_site.settings")
for name in ("DATABASE_URL", "REDIS_URL", "ORKET_ENV"):
    os.environ.pop(name, None)
os.environ.setdefault("ORKET_LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

from boards import services as board_services  # noqa: E402
from boards.actors import Actor  # noqa: E402
from sandboxes import verification  # noqa: E402

RUNS = int(os.environ.get("ORKET_BENCH_VERIFICATION_RUNS", "10"))
SOLUTION = "def verify(pair):\n    return pair[0] + pair[1]\n"
FIXTURE = {"scenarios": [{"id": f"adds_{i}", "input": [i, i], "expected": 2 * i} for i in range(10)]}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def docker_ready() -> str:
    """Empty when Docker can run verifications here, else why not."""
    os.environ.setdefault("ORKET_SANDBOX_RUNNER_IMAGE", "orket-test/python:bookworm")
    os.environ.setdefault("ORKET_SANDBOX_PULL", "0")
    try:
        from sandboxes.docker_backend import DockerRunner
    except ImportError:
        return "sandboxes.docker_backend is missing"
    if not DockerRunner().available():
        return f"no Docker engine with the image {os.environ['ORKET_SANDBOX_RUNNER_IMAGE']} answers"
    return ""


def main() -> int:
    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    project = board_services.project_create(name="Bench verification", creator=user)
    epic = board_services.epic_create(project=project, actor=Actor.for_user(user), name="Bench")
    card = board_services.card_create(epic=epic, actor=Actor.for_user(user), title="Adds")
    workspace = verification.workspaces_root() / f"project-{project.pk}" / "cards" / str(card.pk)
    workspace.mkdir(parents=True)
    (workspace / "verify.py").write_text(SOLUTION)
    for folder in (Path(DATA), verification.workspaces_root(), workspace.parent.parent, workspace.parent, workspace):
        folder.chmod(0o755)
    verification.fixture_upload(card=card, raw=json.dumps(FIXTURE).encode(), name="bench", user=user)

    backends: list[tuple[str, dict[str, str]]] = []
    if shutil.which("bwrap"):
        backends.append(("local (bubblewrap)", {"ORKET_SANDBOX_BACKEND": "local", "ORKET_BWRAP": "1"}))
    else:
        say("skip local (bubblewrap): bwrap is not installed")
    backends.append(("local (plain subprocess)", {"ORKET_SANDBOX_BACKEND": "local", "ORKET_BWRAP": "0"}))
    why_not = docker_ready()
    if why_not:
        say(f"skip docker: {why_not}")
    else:
        backends.append(("docker", {"ORKET_SANDBOX_BACKEND": "docker"}))

    failures = 0
    for label, env in backends:
        os.environ.update(env)
        walls: list[float] = []
        for _ in range(RUNS + 1):  # the first run warms caches and is not counted
            started = time.perf_counter()
            run = verification.verification_run(run_id=verification.verification_start(card=card, requested_by="b").pk)
            walls.append((time.perf_counter() - started) * 1000)
            if run.status != "passed":
                failures += 1
                say(f"{label}: run {run.pk} ended {run.status}: {run.output[:300]}")
        counted = walls[1:]
        say(
            f"{label}: request to finished run over {len(counted)} runs of 10 scenarios: "
            f"median {statistics.median(counted):.0f} ms, p95 {percentile(counted, 0.95):.0f} ms, "
            f"fastest {min(counted):.0f} ms (first, cold: {walls[0]:.0f} ms)"
        )
    shutil.rmtree(DATA, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
