"""Queue the sandboxes app's Celery tasks once the caller's transaction commits.

Services and verification call these functions rather than the tasks, so grep finds every place that
queues work, and the modules import one way: services and verification -> dispatch -> tasks. The
tasks reach the services only when they run, never at import time. Outside a transaction (autocommit)
`on_commit` queues at once.
"""

from __future__ import annotations

from django.db import transaction

from sandboxes import tasks


def queue_sandbox_provision(*, sandbox_id: int) -> None:
    transaction.on_commit(lambda: tasks.sandbox_provision.delay(sandbox_id))


def queue_sandbox_halt(*, sandbox_id: int) -> None:
    transaction.on_commit(lambda: tasks.sandbox_halt.delay(sandbox_id))


def queue_sandbox_teardown(*, sandbox_id: int) -> None:
    transaction.on_commit(lambda: tasks.sandbox_teardown.delay(sandbox_id))


def queue_sandbox_logs_capture(*, sandbox_id: int) -> None:
    transaction.on_commit(lambda: tasks.sandbox_logs_capture.delay(sandbox_id))


def queue_verification_run(*, run_id: int) -> None:
    transaction.on_commit(lambda: tasks.verification_run.delay(run_id))
