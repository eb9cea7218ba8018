"""The Celery application. Tasks run in worker processes (or the embedded worker thread), never in a
web request."""

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orket_site.settings")

app = Celery("orket")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_process_init.connect
@signals.worker_init.connect
def _settle_worker_heap(**_: Any) -> None:
    from orket_site.heap import settle_heap

    settle_heap()


@signals.task_prerun.connect
def _count_task_start(task_id: str, **_: Any) -> None:
    from orket_site.instruments import celery_task_started

    celery_task_started(task_id)


@signals.task_postrun.connect
def _count_task_end(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    from orket_site.instruments import celery_task_finished

    celery_task_finished(task_id, task.name, state)
