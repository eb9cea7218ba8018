"""Celery tasks of the sandboxes app: thin wrappers named after the services they call.

Services queue these through `sandboxes.dispatch`, which imports this module; so this module imports
the services inside each task, when it runs, and the modules load one way (services -> dispatch -> tasks).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task, signals


@shared_task(name="sandboxes.verification_run", acks_late=True)
def verification_run(run_id: int) -> None:
    from sandboxes import verification

    verification.verification_run(run_id=run_id)


@shared_task(name="sandboxes.verification_runs_recover", acks_late=False, ignore_result=True)
def verification_runs_recover() -> int:
    from sandboxes import verification

    return verification.verification_runs_recover()


# -- sandbox lifecycle (sandboxes.services); only workers talk to Docker --------------------------------------


@shared_task(name="sandboxes.sandbox_provision", acks_late=True)
def sandbox_provision(sandbox_id: int) -> None:
    from sandboxes import services

    services.sandbox_provision(sandbox_id=sandbox_id)


@shared_task(name="sandboxes.sandbox_halt", acks_late=True)
def sandbox_halt(sandbox_id: int) -> None:
    from sandboxes import services

    services.sandbox_halt(sandbox_id=sandbox_id)


@shared_task(name="sandboxes.sandbox_teardown", acks_late=True)
def sandbox_teardown(sandbox_id: int) -> None:
    from sandboxes import services

    services.sandbox_teardown(sandbox_id=sandbox_id)


@shared_task(name="sandboxes.sandbox_logs_capture", acks_late=False, ignore_result=True)
def sandbox_logs_capture(sandbox_id: int) -> None:
    from sandboxes import services

    services.sandbox_logs_capture(sandbox_id=sandbox_id)


@shared_task(name="sandboxes.sandboxes_check_health", acks_late=False, ignore_result=True)
def sandboxes_check_health() -> int:
    from sandboxes import services

    return services.sandboxes_check_health()


@shared_task(name="sandboxes.sandboxes_cleanup", acks_late=False, ignore_result=True)
def sandboxes_cleanup() -> dict[str, int]:
    from sandboxes import services

    return services.sandboxes_cleanup()


@signals.worker_ready.connect
def _find_sandbox_tools(**_: Any) -> None:
    from sandboxes import docker_backend

    docker_backend.log_tools()


@shared_task(name="sandboxes.sandboxes_logs_follow", acks_late=False, ignore_result=True)
def sandboxes_logs_follow() -> int:
    from sandboxes import log_follow

    return log_follow.sandboxes_logs_follow()


@signals.worker_ready.connect
def _follow_sandbox_logs(**_: Any) -> None:
    """A worker starting (again) follows the logs of the live sandboxes: the stored cursors make it
    resume where the last follower stopped. Through a task, so the threads run where tasks run (a
    pool process), never in a prefork parent whose database connections its children would inherit."""
    try:
        sandboxes_logs_follow.delay()
    except Exception:  # the worker must start even when the broker hiccups; the health check follows too
        logging.getLogger(__name__).exception("could not ask to follow the logs of the live sandboxes")


@signals.worker_shutdown.connect
@signals.worker_process_shutdown.connect
def _stop_following_sandbox_logs(**_: Any) -> None:
    from sandboxes import log_follow

    log_follow.sandboxes_logs_unfollow()
