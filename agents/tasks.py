"""Celery tasks of the agent engine: thin wrappers named after the services they call, each connected
to its hand-off in agents.dispatch."""

from __future__ import annotations

import logging

from celery import shared_task

from agents import dispatch, planning, services

logger = logging.getLogger(__name__)


@shared_task(name="agents.run_advance", acks_late=True)
def run_advance(run_id: int) -> None:
    services.run_advance(run_id=run_id)


@shared_task(name="agents.turn_execute", acks_late=True)
def turn_execute(turn_id: int) -> None:
    services.turn_execute(turn_id=turn_id)


@shared_task(name="agents.plan_draft", acks_late=True)
def plan_draft(plan_id: int) -> None:
    planning.plan_draft(plan_id=plan_id)


@shared_task(name="agents.turns_reap_stale", acks_late=False, ignore_result=True)
def turns_reap_stale() -> int:
    reaped = services.turns_reap_stale()
    if reaped:
        logger.info("returned %d turns whose worker stopped answering to the queue", reaped)
    return reaped


dispatch.RUN_ADVANCE.connect(run_advance)
dispatch.TURN_EXECUTE.connect(turn_execute)
dispatch.PLAN_DRAFT.connect(plan_draft)

from agents.gitea import tasks as gitea_tasks  # noqa: E402, F401  (registers the Gitea tasks)
from agents.sources import tasks as source_tasks  # noqa: E402, F401  (registers the source repository tasks)
