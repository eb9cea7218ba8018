"""Services and selectors of tool calls that wait for a person, and of people answering a card.

A call of a tool in the project's approval list stops its turn before the call runs
(`tool_approval_request`, from the turn loop); the turn waits, its card is blocked with wait reason
`input`, and the run waits too. `tool_approval_decide` records the person's decision, returns the card
to work through the state machine and queues the turn again: the resumed attempt reuses the stored
answer and either makes the approved call or tells the model why it was rejected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agents import dispatch
from agents.errors import ApprovalDecided, ApprovalInvalid, ApprovalPending
from agents.models import (
    DEFAULT_APPROVAL_TOOLS,
    RUN_FINAL_STATUSES,
    ApprovalStatus,
    ProjectAgentSettings,
    Run,
    ToolApproval,
    Turn,
    TurnStatus,
)
from agents.prompts import TOOL_SCHEMAS
from agents.run_events import event_append
from boards import machine
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, Comment, Project

MAX_REASON_CHARS = 5_000


def approvable_tools() -> list[str]:
    """The tool names a project may put on its approval list."""
    return sorted(set(TOOL_SCHEMAS) | set(DEFAULT_APPROVAL_TOOLS))


def call_label(tool: str, arguments: dict[str, Any], limit: int = 160) -> str:
    """`delete_file(path="a.txt", confirm=true)`, cut to `limit` characters."""
    shown = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())
    text = f"{tool}({shown})"
    return text if len(text) <= limit else text[: limit - 5] + " ...)"


# -- services ------------------------------------------------------------------------------------------


@transaction.atomic
def approval_tools_set(*, project: Project, tools: Iterable[str]) -> ProjectAgentSettings:
    """The project's list of tools whose calls wait for a person's approval."""
    chosen = list(dict.fromkeys(tools))
    unknown = sorted(set(chosen) - set(approvable_tools()))
    if unknown:
        raise ApprovalInvalid(f"Unknown tools: {', '.join(unknown)}.", code="unknown_tools")
    settings_row, _ = ProjectAgentSettings.objects.select_for_update().get_or_create(project=project)
    settings_row.approval_tools = sorted(chosen)
    settings_row.save(update_fields=["approval_tools"])
    return settings_row


def tool_approval_request(
    *, turn: Turn, step_number: int, call_index: int, tool: str, arguments: dict[str, Any]
) -> ToolApproval:
    """Record that this call of the turn waits for a person; the same call asked twice is one record."""
    with transaction.atomic():
        approval, _ = ToolApproval.objects.get_or_create(
            turn_id=turn.pk,
            step_number=step_number,
            call_index=call_index,
            defaults={
                "project_id": turn.run.project_id,
                "run_id": turn.run_id,
                "card_id": turn.card_id,
                "tool": tool,
                "arguments": arguments,
            },
        )
    return approval


def tool_approval_decide(*, approval: ToolApproval, user: Any, approve: bool, reason: str = "") -> ToolApproval:
    """Approve or reject a waiting call. The decision, the card's return to work (state machine and
    history, naming the person) and the turn's return to the queue commit together; the turn is
    dispatched after commit."""
    reason = reason.strip()
    if not approve and not reason:
        raise ApprovalInvalid("Say why the call is rejected: the agent reads the reason.", code="reason_required")
    if len(reason) > MAX_REASON_CHARS:
        raise ApprovalInvalid(f"The reason is longer than {MAX_REASON_CHARS:,} characters.", code="reason_too_long")
    with transaction.atomic():
        locked = ToolApproval.objects.select_for_update().get(pk=approval.pk)
        if locked.status != ApprovalStatus.PENDING:
            raise ApprovalDecided(f"This call was {locked.status} already.")
        turn = Turn.objects.select_for_update().select_related("run").get(pk=locked.turn_id)
        if turn.status != TurnStatus.WAITING or turn.run.status in RUN_FINAL_STATUSES:
            raise ApprovalDecided("The turn no longer waits for this call.", code="not_waiting")
        locked.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        locked.decided_by, locked.decided_at, locked.reason = user, timezone.now(), reason
        locked.save(update_fields=["status", "decided_by", "decided_at", "reason"])
        _card_back_to_work(locked, turn, Actor.for_user(user))
        try:
            with transaction.atomic():
                Turn.objects.filter(pk=turn.pk).update(
                    status=TurnStatus.QUEUED, queued_at=timezone.now(), lease_owner="", lease_expires_at=None
                )
        except IntegrityError as busy:
            raise ApprovalDecided(
                "Another turn works on this card now; this call can no longer be decided.", code="card_busy"
            ) from busy
        event_append(
            turn.run_id,
            "approval.decided",
            turn_id=turn.pk,
            card_id=turn.card_id,
            approval=locked.pk,
            status=locked.status,
            by=user.get_username(),
            reason=reason,
            step=locked.step_number,
            call=locked.call_index + 1,
            name=locked.tool,
        )
        dispatch.turn_execute_after_commit(turn_id=turn.pk)
    return locked


def _card_back_to_work(approval: ToolApproval, turn: Turn, actor: Actor) -> None:
    what = call_label(approval.tool, approval.arguments)
    where = f"turn {turn.number}, step {approval.step_number}"
    if approval.status == ApprovalStatus.APPROVED:
        decision = f"{actor.user} approved {what} ({where}); the turn resumes at that step."
    else:
        decision = f"{actor.user} rejected {what} ({where}): {approval.reason}"
    card = Card.objects.get(pk=approval.card_id)
    board_services.card_record_decision(card=card, actor=actor, reason=decision[:MAX_REASON_CHARS])
    if card.status in machine.WAITING_STATUSES:
        board_services.card_transition(
            card=card,
            to_status=machine.IN_PROGRESS,
            actor=actor,
            reason=f"Back to work after {actor.user}'s decision on {approval.tool}.",
        )


def approvals_cancel(*, run: Run) -> int:
    """A canceled run's waiting turns end, and their calls are no longer asked about."""
    waiting = Turn.objects.filter(run=run, status=TurnStatus.WAITING)
    ToolApproval.objects.filter(turn__in=waiting, status=ApprovalStatus.PENDING).update(
        status=ApprovalStatus.CANCELED, decided_at=timezone.now()
    )
    return waiting.update(status=TurnStatus.CANCELED, outcome="The run was canceled while the turn waited.")


def card_answer_and_resume(*, card: Card, user: Any, body: str) -> tuple[Card, Run | None]:
    """A person answers a waiting card; a run of its epic that is still going picks the card up."""
    with transaction.atomic():
        if ToolApproval.objects.filter(card_id=card.pk, status=ApprovalStatus.PENDING).exists():
            raise ApprovalPending("The card waits for a decision on a tool call: approve or reject it.")
        answered = board_services.card_answer(card=card, actor=Actor.for_user(user), body=body)
        run = active_run_of(answered)
        if run is not None:
            dispatch.run_advance_after_commit(run_id=run.pk)
    return answered, run


# -- selectors -----------------------------------------------------------------------------------------


def active_run_of(card: Card) -> Run | None:
    """The epic's run that is still going and covers the card, if any."""
    runs = Run.objects.filter(epic_id=card.epic_id, status__in=["queued", "running"]).order_by("-id")
    return next((run for run in runs if run.card_id in (None, card.pk)), None)


def card_question(card: Card) -> str:
    """What a waiting card asks: the newer of the agents' latest comment (a blocking report is one)
    and the reason given when the card was last blocked."""
    comment = Comment.objects.filter(card_id=card.pk, author__isnull=True).order_by("-id").first()
    blocked = card.history.filter(to_status__in=machine.WAITING_STATUSES).order_by("-id").first()
    if comment is not None and (blocked is None or comment.created_at >= blocked.created_at):
        return comment.body
    return blocked.reason if blocked is not None else ""


def approval_frame(approval: ToolApproval) -> dict[str, Any]:
    return {
        "id": approval.pk,
        "run": approval.run_id,
        "turn": approval.turn_id,
        "turn_number": approval.turn.number,
        "card": approval.card_id,
        "step": approval.step_number,
        "call": approval.call_index + 1,
        "tool": approval.tool,
        "arguments": approval.arguments,
        "status": approval.status,
        "decided_by": approval.decided_by.get_username() if approval.decided_by else "",
        "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
        "reason": approval.reason,
        "created_at": approval.created_at.isoformat(),
    }


def card_waiting(card: Card) -> dict[str, Any]:
    """What the drawer shows of a card that waits: its question, its calls waiting for approval, the run."""
    approvals = ToolApproval.objects.filter(card_id=card.pk).select_related("turn", "decided_by").order_by("-id")[:20]
    run = active_run_of(card)
    return {
        "card": card.pk,
        "status": card.status,
        "wait_reason": card.wait_reason,
        "question": card_question(card) if card.status in machine.WAITING_STATUSES else "",
        "approvals": [approval_frame(approval) for approval in approvals],
        "run": {"id": run.pk, "status": run.status} if run is not None else None,
    }
