"""Helpers for engine tests: the seeded demo project, a Celery worker thread, waiting for a run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from agents.models import Run
from orket_site.celery import app as celery_app
from orket_site.embedded import EmbeddedWorker


@contextmanager
def worker_thread() -> Iterator[EmbeddedWorker]:
    """A real Celery worker (solo pool) consuming the configured broker on a thread of this process.

    Tasks left in the queue by earlier tests (which drove the engine by hand) are purged first."""
    celery_app.control.purge()
    worker = EmbeddedWorker(name=f"test-{threading.get_ident()}", beat=False, loglevel="WARNING")
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def wait_for_run(run_id: int, timeout: float = 120.0) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.is_final:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish within {timeout} s: {Run.objects.get(pk=run_id).status}")


def drive(run_id: int, max_steps: int = 100) -> Run:
    """Advance a run by hand in this thread: start its turns and execute them, until it ends."""
    from agents import services
    from agents.models import Turn

    for _ in range(max_steps):
        services.run_advance(run_id=run_id)
        run = Run.objects.get(pk=run_id)
        if run.is_final:
            return run
        for turn_id in Turn.objects.filter(run_id=run_id, status="queued").values_list("pk", flat=True):
            services.turn_execute(turn_id=turn_id)
    raise AssertionError(f"run {run_id} did not end within {max_steps} steps")
