"""Celery tasks of the Gitea integration: thin wrappers named after the services they call, each
connected to its hand-off in agents.dispatch."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from agents import dispatch
from agents.gitea import services
from agents.gitea.client import GiteaError

logger = logging.getLogger(__name__)


@shared_task(name="agents.gitea_delivery_process", acks_late=True)
def gitea_delivery_process(delivery_id: int) -> str:
    return services.delivery_process(delivery_id=delivery_id).status


@shared_task(name="agents.gitea_pull_request_open", acks_late=True)
def gitea_pull_request_open(card_id: int) -> int | None:
    pull = services.card_pull_request_try(card_id=card_id)
    return pull.number if pull else None


@shared_task(name="agents.gitea_pull_request_merge", acks_late=True)
def gitea_pull_request_merge(link_id: int, pull_id: int) -> str:
    """A failed merge stays open and approved; reconciliation merges it later."""
    try:
        return services.pull_request_merge(link_id=link_id, pull_id=pull_id)
    except GiteaError as error:
        logger.warning("merging pull request %s failed: %s", pull_id, error)
        return f"not merged: {error}"


@shared_task(name="agents.gitea_comment_post", acks_late=True)
def gitea_comment_post(link_id: int, number: int, text: str) -> None:
    services.pull_request_comment(link_id=link_id, number=number, text=text)


@shared_task(name="agents.gitea_reconcile_all", acks_late=False, ignore_result=True)
def gitea_reconcile_all() -> dict[int, list[str]]:
    return services.gitea_reconcile_all()


@shared_task(name="agents.gitea_sandbox_announce", bind=True, acks_late=True, max_retries=150)
def gitea_sandbox_announce(self: Any, link_id: int, number: int, sandbox_id: int) -> None:
    if not services.sandbox_announce(link_id=link_id, number=number, sandbox_id=sandbox_id):
        raise self.retry(countdown=2)


dispatch.GITEA_DELIVERY_PROCESS.connect(gitea_delivery_process)
dispatch.GITEA_PULL_REQUEST_OPEN.connect(gitea_pull_request_open)
dispatch.GITEA_PULL_REQUEST_MERGE.connect(gitea_pull_request_merge)
dispatch.GITEA_COMMENT_POST.connect(gitea_comment_post)
dispatch.GITEA_SANDBOX_ANNOUNCE.connect(gitea_sandbox_announce)
