"""Helpers for engine tests: the seeded demo project, a Celery worker thread, waiting for a run."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from celery.worker import WorkController

from agents.models import Run
from orket_site.celery import app as celery_app


@contextmanager
def worker_thread() -> Iterator[WorkController]:
    """A real Celery worker (solo pool) consuming the configured broker on a thread of this process."""
    controller = WorkController(
        app=celery_app,
        hostname=f"test-{threading.get_ident()}@{socket.gethostname()}",
        pool_cls="solo",
        concurrency=1,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
    )
    thread = threading.Thread(target=controller.start, daemon=True)
    thread.start()
    try:
        yield controller
    finally:
        controller.stop(in_sighandler=False)
        thread.join(15)


def wait_for_run(run_id: int, timeout: float = 120.0) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.is_final:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish within {timeout} s: {Run.objects.get(pk=run_id).status}")
