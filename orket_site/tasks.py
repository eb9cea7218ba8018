"""Site-wide Celery tasks."""

from __future__ import annotations

import os
import socket

from celery import shared_task


@shared_task(name="orket.worker_ping", acks_late=False, ignore_result=False)
def worker_ping() -> dict[str, object]:
    """Answer with who ran it, so a caller can prove a worker is consuming the queue."""
    return {"hostname": socket.gethostname(), "pid": os.getpid()}
