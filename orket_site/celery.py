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
