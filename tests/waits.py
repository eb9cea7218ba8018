"""Waiting for an event with a deadline instead of sleeping a fixed time: a fixed sleep flakes on a
busy machine and, on a quiet one, lets a test pass before the thing it checks has happened."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from celery import signals

T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T], *, timeout: float = 60.0, interval: float = 0.1) -> T:
    """Call `check` until it returns something truthy, and return that; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(interval)


class CeleryTasksInFlight:
    """Counts the Celery tasks this process publishes and those its worker threads finish, by task id
    (a retry publishes the same id again), so a test can wait until nothing is queued or running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()
        self.published_count = 0

    def published(self, headers: dict[str, Any] | None = None, **_: Any) -> None:
        task_id = (headers or {}).get("id")
        if task_id:
            with self._lock:
                self._open[task_id] += 1
                self.published_count += 1

    def finished(self, task_id: str | None = None, **_: Any) -> None:
        with self._lock:
            if task_id in self._open:
                self._open[task_id] -= 1
                if self._open[task_id] <= 0:
                    del self._open[task_id]

    def idle(self) -> bool:
        with self._lock:
            return not self._open


@contextmanager
def celery_tasks_in_flight() -> Iterator[CeleryTasksInFlight]:
    tracker = CeleryTasksInFlight()
    signals.after_task_publish.connect(tracker.published, weak=False)
    signals.task_postrun.connect(tracker.finished, weak=False)
    try:
        yield tracker
    finally:
        signals.after_task_publish.disconnect(tracker.published)
        signals.task_postrun.disconnect(tracker.finished)
