"""Executing a turn: claiming it, running its steps (agents.steps), and what happens after it
(review states, workspace merges, the Gitea hooks). The run is advanced afterwards.

A turn that is cut off (a crash, a lost lease, a database outage) is taken up again by the next
attempt at the step where it stopped: steps already answered are not asked again, and calls already
recorded are not made again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django import db
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents import dispatch, phase_timer
from agents.engine import block_card
from agents.gitea import hooks as gitea_hooks
from agents.leases import LeaseKeeper, LeaseLost, turn_claim, worker_identity
from agents.models import Role, Run, Turn, TurnFailure, TurnStatus
from agents.prompt_budget import PromptTooLarge
from agents.providers import ProviderError
from agents.run_events import event_append, scrub
from agents.sources.services import card_start_branch
from agents.steps import RunCanceled, TurnEnding, TurnLoop
from agents.workspaces import ProjectWorkspace, project_workspace_root
from boards import machine
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card
from orket_site.errors import OrketError

logger = logging.getLogger(__name__)

# The outcome of a turn whose model server did not answer after every retry; its card waits and resumes.
MODEL_UNAVAILABLE = "The model server is unavailable"
# Endings after which a worker's changed files go to review without the seat saying so.
SETTLED_ENDINGS = frozenset({"finished", "no_call"})


def _workspace_for(card: Card) -> ProjectWorkspace:
    workspace = ProjectWorkspace(project_workspace_root(settings.DATA_DIR, card.project_id))
    workspace.ensure()
    return workspace


def turn_execute(*, turn_id: int) -> None:
    """Claim and execute one turn; safe to call twice for the same turn."""
    with phase_timer.sample("turn"), phase_timer.queries_timed(db.connection):
        _turn_execute(turn_id)


def _turn_execute(turn_id: int) -> None:
    owner = worker_identity()
    with phase_timer.phase("claim"):
        turn = turn_claim(turn_id=turn_id, owner=owner)
    if turn is None:
        return
    run = turn.run
    started = time.monotonic()
    try:
        with LeaseKeeper(turn.pk, owner) as keeper:
            _execute_claimed(run, turn, owner, started, keeper)
    except (db.OperationalError, db.InterfaceError):
        # The database went away mid-turn: nothing is wrong with the turn. It stays running under
        # this worker's lease, which now stops being renewed; once the lease expires the reaper
        # queues it again, and the next attempt resumes from the steps it journaled.
        logger.warning("turn %s: the database became unreachable; the turn resumes after its lease", turn.pk)
        return
    except Exception as error:
        # An Orket bug must not leave a turn shown as running or stop the worker: record it, block
        # the card with the reason, and let the run go on with its other cards.
        logger.exception("turn %s failed inside Orket", turn.pk)
        message = f"Orket hit an internal error in this turn: {type(error).__name__}: {error}"
        if _finish_turn(turn, owner, TurnStatus.FAILED, message, started):
            block_card(run, Card.objects.get(pk=turn.card_id), "input", message)
    with transaction.atomic():
        dispatch.run_advance_after_commit(run_id=run.pk)


def _finish_turn(turn: Turn, owner: str, status: str, outcome: str, started: float, **fields: Any) -> bool:
    fields = {name: scrub(value) for name, value in fields.items()}
    with phase_timer.phase("finish"):
        updated = Turn.objects.filter(pk=turn.pk, status=TurnStatus.RUNNING, lease_owner=owner).update(
            status=status,
            outcome=scrub(outcome[:20_000]),
            finished_at=timezone.now(),
            duration_ms=int((time.monotonic() - started) * 1000),
            **fields,
        )
        if updated:
            event_append(turn.run_id, f"turn.{status}", turn_id=turn.pk, card_id=turn.card_id, outcome=outcome[:2000])
    return bool(updated)


def _execute_claimed(run: Run, turn: Turn, owner: str, started: float, keeper: LeaseKeeper) -> None:
    card = Card.objects.select_related("epic", "project").get(pk=turn.card_id)
    role = Role.objects.get(name=turn.role)
    _announce_started(run, turn, card, role)
    actor = _turn_actor(turn, role, card)
    loop: TurnLoop | None = None
    try:
        _card_to_work(run, turn, card, actor)
        loop = _turn_loop(run, turn, owner, card, role, actor, keeper, started)
        ending = loop.run_steps()
    except RunCanceled:
        totals = loop.totals() if loop else {}
        _finish_turn(turn, owner, TurnStatus.CANCELED, "The run was canceled during the turn.", started, **totals)
        return
    except LeaseLost:
        logger.warning("turn %s: lease lost to another worker; abandoning this attempt", turn.pk)
        return
    except ProviderError as error:
        _model_failed(run, turn, owner, card, started, error, loop)
        return
    except (OrketError, PromptTooLarge) as error:
        _turn_could_not_go_on(run, turn, owner, card, started, error, loop)
        return
    _turn_ended(run, turn, owner, card, role, actor, started, loop, ending)


def _announce_started(run: Run, turn: Turn, card: Card, role: Role) -> None:
    event_append(
        run.pk,
        "turn.started",
        turn_id=turn.pk,
        card_id=card.pk,
        number=turn.number,
        seat=turn.seat,
        role=role.name,
        purpose=turn.purpose,
        model=turn.model,
        provider=turn.provider,
        attempt=turn.attempts,
    )


def _turn_actor(turn: Turn, role: Role, card: Card) -> Actor:
    """The seat acting in the turn; a review turn finalizes only where people do not review in Gitea."""
    roles = (role.name, "project_manager") if role.is_project_manager else (role.name,)
    finalizes = turn.purpose == "review" and role.can_finalize and gitea_hooks.agents_may_finalize(card)
    return Actor.for_seat(turn.seat, roles, can_finalize=finalizes)


def _card_to_work(run: Run, turn: Turn, card: Card, actor: Actor) -> None:
    if card.status == machine.READY:
        board_services.card_transition(
            card=card,
            to_status=machine.IN_PROGRESS,
            actor=actor,
            reason=f"Run {run.pk} turn {turn.number} started.",
        )


def _turn_loop(
    run: Run, turn: Turn, owner: str, card: Card, role: Role, actor: Actor, keeper: LeaseKeeper, started: float
) -> TurnLoop:
    """The turn's steps, on the card's worktree (made from its start branch when missing)."""
    workspace = _workspace_for(card)
    return TurnLoop(
        run=run,
        turn=turn,
        owner=owner,
        card=card,
        role=role,
        actor=actor,
        profile=turn.model_profile or run.model_profile,
        workspace=workspace,
        worktree=workspace.card_worktree(card.pk, start=card_start_branch(card)),
        keeper=keeper,
        started=started,
    )


def _turn_could_not_go_on(
    run: Run, turn: Turn, owner: str, card: Card, started: float, error: Exception, loop: TurnLoop | None
) -> None:
    message = error.message if isinstance(error, OrketError) else str(error)
    totals = loop.totals() if loop else {}
    _finish_turn(turn, owner, TurnStatus.FAILED, f"The turn could not go on: {message}", started, **totals)
    block_card(run, Card.objects.get(pk=card.pk), "input", message)


def _turn_ended(
    run: Run,
    turn: Turn,
    owner: str,
    card: Card,
    role: Role,
    actor: Actor,
    started: float,
    loop: TurnLoop,
    ending: TurnEnding,
) -> None:
    """The steps ended: the turn waits for an approval, or succeeds and its card moves on."""
    if ending.kind == "approval":
        _wait_for_approval(run, turn, owner, card, started, loop, ending)
        return
    if ending.kind != "blocked":
        loop.leave_refusal_note()
    if _finish_turn(turn, owner, TurnStatus.SUCCEEDED, ending.outcome, started, **loop.totals()):
        with phase_timer.phase("after_turn"):
            _after_turn(run, turn, role, actor, loop.workspace, loop, ending)


def _wait_for_approval(
    run: Run, turn: Turn, owner: str, card: Card, started: float, loop: TurnLoop, ending: TurnEnding
) -> None:
    """The turn stops before a call that needs a person: it waits (neither failed nor succeeded) and
    its card is blocked for input, together, so a decision always finds both."""
    with transaction.atomic():
        if _finish_turn(turn, owner, TurnStatus.WAITING, ending.outcome, started, **loop.totals()):
            block_card(run, Card.objects.get(pk=card.pk), "input", ending.outcome)


def _model_failed(
    run: Run, turn: Turn, owner: str, card: Card, started: float, error: ProviderError, loop: TurnLoop | None
) -> None:
    totals = loop.totals() if loop else {}
    if error.retryable:  # an outage (refused, timed out, 429, 5xx): wait for the server, then resume
        outcome = f"{MODEL_UNAVAILABLE}: {error}"
        _finish_turn(turn, owner, TurnStatus.FAILED, outcome, started, failure=TurnFailure.MODEL_UNAVAILABLE, **totals)
        report = f"The model call failed: {error}. The card resumes when the model server answers again."
    else:
        _finish_turn(turn, owner, TurnStatus.FAILED, f"The model could not be reached: {error}", started, **totals)
        report = f"The model call failed: {error}"
    block_card(run, Card.objects.get(pk=card.pk), "resource", report)


def _after_turn(
    run: Run, turn: Turn, role: Role, actor: Actor, workspace: ProjectWorkspace, loop: TurnLoop, ending: TurnEnding
) -> None:
    card = Card.objects.get(pk=turn.card_id)
    working = turn.purpose != "review"
    if card.status == machine.IN_PROGRESS and loop.files and working and ending.kind in SETTLED_ENDINGS:
        board_services.card_transition(
            card=card,
            to_status=machine.CODE_REVIEW,
            actor=actor,
            reason=f"Turn {turn.number} changed {len(loop.files)} files.",
        )
        event_append(run.pk, "card.status", card_id=card.pk, status=machine.CODE_REVIEW, seat=turn.seat)
    # A review turn ends an agent review the hooks asked for, even where only people may finalize.
    reviewed = not working and role.can_finalize
    gitea_hooks.turn_finished(card_id=card.pk, seat=turn.seat, can_finalize=reviewed, outcome=ending.outcome)
    card.refresh_from_db()
    if card.status == machine.DONE:
        try:
            merge = workspace.merge_card(card.pk)
            event_append(run.pk, "workspace.merged", card_id=card.pk, sha=merge)
        except Exception as error:
            event_append(run.pk, "workspace.merge_failed", card_id=card.pk, message=str(error))
