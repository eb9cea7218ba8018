"""Counters and histograms that web and worker processes increment as they work.

With PROMETHEUS_MULTIPROC_DIR set in a process's environment before it starts, prometheus_client
keeps these values in files in that directory, one set per process, and `/metrics` sums the files
of every process (see orket_site.metrics). Without it they live in the process's memory.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured
from prometheus_client import Counter, Histogram, disable_created_metrics

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


def multiprocess_dir() -> str:
    """The shared directory of multiprocess mode, or "" when every process keeps its own values."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE, "").strip()
    if directory and not os.path.isdir(directory):
        raise ImproperlyConfigured(f"{MULTIPROCESS_DIR_VARIABLE}={directory!r} is not an existing directory.")
    return directory


multiprocess_dir()  # a wrong directory stops the process at start, not each request later
disable_created_metrics()  # no `_created` series: Orket's dashboards read rates, not creation times

http_requests = Counter(
    "orket_http_requests_total", "HTTP requests answered, by method and status code.", ["method", "status"]
)
http_request_duration = Histogram(
    "orket_http_request_duration_seconds",
    "Time to answer an HTTP request, through every middleware.",
    buckets=HTTP_DURATION_BUCKETS,
)
celery_tasks = Counter("orket_celery_tasks_total", "Celery tasks finished, by task and final state.", ["task", "state"])
celery_task_duration = Histogram(
    "orket_celery_task_duration_seconds", "Time a Celery task ran, by task.", ["task"], buckets=TASK_DURATION_BUCKETS
)


class RequestMetricsMiddleware:
    """Counts every HTTP request and times it; the first middleware, so it sees every answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        http_request_duration.observe(time.perf_counter() - started)
        method = request.method if request.method in HTTP_METHODS else "other"
        http_requests.labels(method=method, status=str(response.status_code)).inc()
        return response


_task_lock = threading.Lock()
_task_started: dict[str, float] = {}


def celery_task_started(task_id: str) -> None:
    with _task_lock:
        _task_started[task_id] = time.perf_counter()


def celery_task_finished(task_id: str, task_name: str, state: str | None) -> None:
    with _task_lock:
        started = _task_started.pop(task_id, None)
    celery_tasks.labels(task=task_name, state=state or "UNKNOWN").inc()
    if started is not None:
        celery_task_duration.labels(task=task_name).observe(time.perf_counter() - started)
