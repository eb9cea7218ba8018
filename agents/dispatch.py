"""Hand-offs from the agents' services to their Celery tasks, always made after commit.

A service says what work is owed (a turn to execute, a run to advance, a delivery to process) by
calling one of the `*_after_commit` functions below; nobody hears of work whose rows were rolled
back. The task that does the work connects itself here when its module is imported (`agents.tasks`,
`agents.gitea.tasks`, `agents.sources.tasks`; `AgentsConfig.ready` imports them). So services import
this module and never a tasks module, tasks import services, every import reads top-down, and
grepping a function's name finds every caller.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.db import transaction

from agents import phase_timer


class Queueable(Protocol):
    def delay(self, *args: Any) -> Any: ...


class Handoff:
    """One kind of owed work, and the task that does it once connected."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.task: Queueable | None = None

    def connect(self, task: Queueable) -> None:
        self.task = task

    def after_commit(self, *args: Any) -> None:
        task = self.task
        if task is None:
            raise RuntimeError(
                f"No task is connected to the {self.name!r} hand-off; its tasks module was not imported."
            )
        transaction.on_commit(lambda: _send(task, args))


def _send(task: Queueable, args: tuple[Any, ...]) -> None:
    with phase_timer.phase("dispatch"):
        task.delay(*args)


RUN_ADVANCE = Handoff("run_advance")
TURN_EXECUTE = Handoff("turn_execute")
PLAN_DRAFT = Handoff("plan_draft")
SOURCE_CLONE = Handoff("source_clone")
GITEA_DELIVERY_PROCESS = Handoff("gitea_delivery_process")
GITEA_PULL_REQUEST_OPEN = Handoff("gitea_pull_request_open")
GITEA_PULL_REQUEST_MERGE = Handoff("gitea_pull_request_merge")
GITEA_COMMENT_POST = Handoff("gitea_comment_post")
GITEA_SANDBOX_ANNOUNCE = Handoff("gitea_sandbox_announce")


def run_advance_after_commit(*, run_id: int) -> None:
    RUN_ADVANCE.after_commit(run_id)


def turn_execute_after_commit(*, turn_id: int) -> None:
    TURN_EXECUTE.after_commit(turn_id)


def plan_draft_after_commit(*, plan_id: int) -> None:
    PLAN_DRAFT.after_commit(plan_id)


def source_clone_after_commit(*, project_id: int, generation: int) -> None:
    SOURCE_CLONE.after_commit(project_id, generation)


def gitea_delivery_process_after_commit(*, delivery_id: int) -> None:
    GITEA_DELIVERY_PROCESS.after_commit(delivery_id)


def gitea_pull_request_open_after_commit(*, card_id: int) -> None:
    GITEA_PULL_REQUEST_OPEN.after_commit(card_id)


def gitea_pull_request_merge_after_commit(*, link_id: int, pull_id: int) -> None:
    GITEA_PULL_REQUEST_MERGE.after_commit(link_id, pull_id)


def gitea_comment_post_after_commit(*, link_id: int, number: int, text: str) -> None:
    GITEA_COMMENT_POST.after_commit(link_id, number, text)


def gitea_sandbox_announce_after_commit(*, link_id: int, number: int, sandbox_id: int) -> None:
    GITEA_SANDBOX_ANNOUNCE.after_commit(link_id, number, sandbox_id)
