"""Celery tasks of the sandboxes app: thin wrappers named after the services they call."""

from __future__ import annotations

from celery import shared_task

from sandboxes import verification


@shared_task(name="sandboxes.verification_run", acks_late=True)
def verification_run(run_id: int) -> None:
    verification.verification_run(run_id=run_id)
