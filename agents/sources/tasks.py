"""Celery tasks of the source repository: thin wrappers named after the services they call."""

from __future__ import annotations

from celery import shared_task

from agents import dispatch
from agents.sources import services


@shared_task(name="agents.source_clone", acks_late=True)
def source_clone(project_id: int, generation: int) -> None:
    services.source_clone(project_id=project_id, generation=generation)


dispatch.SOURCE_CLONE.connect(source_clone)
