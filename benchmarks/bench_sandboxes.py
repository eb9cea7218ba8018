"""Sandboxes: time from request to a healthy sandbox, and what is left behind after create and delete
cycles (must be nothing), for the Docker backend (when an engine with the test images answers) and the
local-process backend.

The request goes the real way: `sandbox_create` commits, a Celery worker (the embedded one, on a thread,
with the in-process broker) runs `sandbox_provision`, and the clock stops when the row says `running`.
The app is a small Python HTTP server; Docker uses host networking on 127.0.0.1 (the test engine has
no bridge) and the local Debian python image built by `.ci/docker-up`.

Usage: .venv/bin/python benchmarks/bench_sandboxes.py [--starts N] [--cycles N] [--backend docker|local|both]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON_IMAGE = "orket-test/python:bookworm"
APP = """
import http.server, os

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

print("listening", flush=True)
http.server.HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler).serve_forever()
"""


def setup() -> None:
    sys.path.insert(0, str(REPO))
    data = Path(tempfile.mkdtemp(prefix="orket-bench-sandboxes-"))
    data.chmod(0o755)
    os.environ["DJANGO_SETTINGS_MODULE"] = "orket_site.settings"
    os.environ["ORKET_DATA_DIR"] = str(data)
    os.environ["ORKET_LOG_LEVEL"] = "WARNING"
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["ORKET_SANDBOX_NETWORK"] = "host"
    os.environ["ORKET_SANDBOX_IMAGE_PYTHON"] = PYTHON_IMAGE
    os.environ["ORKET_SANDBOX_HEALTH_TIMEOUT"] = "60"
    os.environ["ORKET_SANDBOX_PORT_RANGE"] = "24000-24999"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def workspace() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="orket-bench-app-"))
    folder.chmod(0o755)
    (folder / "requirements.txt").write_text("")
    (folder / "app.py").write_text(APP)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def docker_ready() -> bool:
    from sandboxes import docker_backend

    try:
        engine = docker_backend.client(timeout=10)
    except docker_backend.DockerUnavailable:
        return False
    try:
        return docker_backend.image_present(engine, PYTHON_IMAGE) and docker_backend.compose_command() is not None
    finally:
        engine.close()


def wait_for(sandbox_id: int, statuses: set[str], timeout: float = 120) -> str:
    from sandboxes.models import Sandbox

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Sandbox.objects.filter(pk=sandbox_id).values_list("status", flat=True).get()
        if status in statuses:
            return status
        time.sleep(0.05)
    raise RuntimeError(f"sandbox {sandbox_id} did not reach {statuses} within {timeout} s")


def time_to_healthy(backend: str, starts: int, folder: Path) -> None:
    from boards.models import Project
    from orket_site.embedded import EmbeddedWorker
    from sandboxes import services

    os.environ["ORKET_SANDBOX_BACKEND"] = backend
    project = Project.objects.create(name=f"Bench {backend}", slug=f"bench-{backend}-timing")
    services.project_settings(project)
    worker = EmbeddedWorker(name=f"bench-{backend}", beat=False, loglevel="WARNING")
    worker.start()
    seconds: list[float] = []
    try:
        for _ in range(starts):
            began = time.perf_counter()
            sandbox = services.sandbox_create(project=project, workspace=folder)
            status = wait_for(sandbox.pk, {"running", "unhealthy", "failed"})
            seconds.append(time.perf_counter() - began)
            if status != "running":
                raise RuntimeError(f"sandbox {sandbox.pk} ended {status}")
            services.sandbox_delete(sandbox=sandbox)
            wait_for(sandbox.pk, {"deleted"})
    finally:
        worker.stop()
    sys.stdout.write(
        f"sandbox_time_to_healthy backend={backend} starts={starts} median_s={statistics.median(seconds):.2f} "
        f"min_s={min(seconds):.2f} max_s={max(seconds):.2f}\n"
    )
    sys.stdout.flush()


def cycles_left_behind(backend: str, cycles: int, folder: Path) -> int:
    from boards.models import Project
    from sandboxes import docker_backend, local_sandbox, services
    from sandboxes.models import PortLease

    os.environ["ORKET_SANDBOX_BACKEND"] = backend
    project = Project.objects.create(name=f"Cycles {backend}", slug=f"bench-{backend}-cycles")
    services.project_settings(project)
    began = time.perf_counter()
    not_running = 0
    for _ in range(cycles):
        sandbox = services.sandbox_create(project=project, workspace=folder)
        if services.sandbox_provision(sandbox_id=sandbox.pk).status != "running":
            not_running += 1
        services.sandbox_delete(sandbox=sandbox)
        services.sandbox_teardown(sandbox_id=sandbox.pk)
    elapsed = time.perf_counter() - began
    leases = PortLease.objects.filter(sandbox__project=project).count()
    if backend == "docker":
        engine = docker_backend.client()
        try:
            left = len(engine.containers.list(all=True, filters={"label": f"orket.instance={services.instance_id()}"}))
            volumes = len(engine.volumes.list(filters={"label": f"orket.instance={services.instance_id()}"}))
        finally:
            engine.close()
    else:
        left = sum(1 for state in services.sandboxes_root().iterdir() if local_sandbox.alive(state))
        volumes = 0
    sys.stdout.write(
        f"sandbox_cycles backend={backend} cycles={cycles} seconds={elapsed:.1f} per_cycle_s={elapsed / cycles:.2f} "
        f"not_running={not_running} containers_or_processes_left={left} volumes_left={volumes} "
        f"port_leases_left={leases}\n"
    )
    sys.stdout.flush()
    return left + volumes + leases + not_running


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--backend", choices=["docker", "local", "both"], default="both")
    args = parser.parse_args()
    setup()
    folder = workspace()
    backends = ["docker", "local"] if args.backend == "both" else [args.backend]
    problems = 0
    try:
        for backend in backends:
            if backend == "docker" and not docker_ready():
                sys.stdout.write("sandbox_time_to_healthy backend=docker skipped: no engine with the test images\n")
                continue
            time_to_healthy(backend, args.starts, folder)
            problems += cycles_left_behind(backend, args.cycles, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
