"""The agent engine: starting, advancing and finishing runs, and executing turns.

Runs and turns are database rows first: Celery tasks only carry their ids. A turn is claimed with a
compare-and-set on its status plus a lease (owner, expiry, heartbeat); a duplicated or redelivered
task finds the turn taken and does nothing, and a periodic task returns turns whose lease went
stale to the queue. Every visible happening becomes a run event.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from django import db
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from agents.gate import check_call
from agents.gitea import hooks as gitea_hooks
from agents.models import (
    TURN_ACTIVE_STATUSES,
    ModelProfile,
    ProjectAgentSettings,
    Role,
    Run,
    RunStatus,
    SeatNote,
    Team,
    Turn,
    TurnFailure,
    TurnStatus,
)
from agents.prompts import CardContext, PromptContext, compile_prompt
from agents.prompts import Dialect as DialectContext
from agents.providers import (
    ChatRequest,
    Finished,
    ProviderError,
    ReasoningDelta,
    Retrying,
    RetryPolicy,
    TextDelta,
    ToolCall,
    ToolCallsDone,
    provider_for,
    stream_with_retry,
)
from agents.run_events import TextCoalescer, event_append, scrub
from agents.scripted_team import scripted_reply
from agents.toolcalls import parse_tool_calls
from agents.tools import ToolContext, ToolFailed, execute_tool
from agents.workspaces import ProjectWorkspace, project_workspace_root
from boards import machine
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, CardDependency, Epic
from boards.selectors import epic_run_gate, epic_schedule
from orket_site.errors import OrketError

logger = logging.getLogger(__name__)

LEASE_SECONDS = float(os.environ.get("ORKET_TURN_LEASE_SECONDS", "60"))
HEARTBEAT_SECONDS = max(1.0, LEASE_SECONDS / 4)
CANCEL_CHECK_SECONDS = 0.5
MAX_TURN_ATTEMPTS = 3
# The outcome of a turn whose model server did not answer after every retry; its card waits and resumes.
MODEL_UNAVAILABLE = "The model server is unavailable"
LOOP_REPEATS = 3
ETHOS = (
    "Work in small, verifiable steps. Say plainly what you did and did not do. Never claim work is "
    "finished that you have not checked."
)


class EngineError(OrketError):
    status = 409
    code = "run_refused"


class RunCanceled(Exception):
    pass


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _dispatch_turn(turn_id: int) -> None:
    from agents.tasks import turn_execute

    transaction.on_commit(lambda: turn_execute.delay(turn_id))


def _dispatch_advance(run_id: int) -> None:
    from agents.tasks import run_advance

    transaction.on_commit(lambda: run_advance.delay(run_id))


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def profile_by_reference(reference: Any) -> ModelProfile:
    queryset = ModelProfile.objects.all()
    profile = None
    if isinstance(reference, int) or (isinstance(reference, str) and reference.isdigit()):
        profile = queryset.filter(pk=int(reference)).first()
    elif isinstance(reference, str):
        profile = queryset.filter(name=reference).first()
    if profile is None:
        raise EngineError(f"There is no model profile {reference!r}.", code="unknown_profile")
    return profile


def ollama_answers(base_url: str, timeout: float = 0.5) -> bool:
    try:
        return httpx.get(base_url.rstrip("/") + "/api/tags", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def model_server_answers(profile: ModelProfile, timeout: float = 2.0) -> bool:
    """Whether the profile's model server answers at all (any answer below 500 from its model list)."""
    if profile.provider == ModelProfile.Provider.SCRIPTED:
        return True
    if profile.provider == ModelProfile.Provider.OLLAMA:
        return ollama_answers(profile.base_url, timeout)
    from agents.providers.openai import chat_url

    url = chat_url(profile.base_url).removesuffix("/chat/completions") + "/models"
    key = profile.api_key()
    try:
        response = httpx.get(url, timeout=timeout, headers={"Authorization": f"Bearer {key}"} if key else {})
    except httpx.HTTPError:
        return False
    return response.status_code < 500


def default_profile(project_id: int) -> ModelProfile:
    """The project's chosen profile; otherwise the local Ollama profile when its server answers, and
    the scripted demo when it does not, so a fresh install can always demonstrate a run."""
    chosen = (
        ProjectAgentSettings.objects.filter(project_id=project_id)
        .values_list("default_model_profile", flat=True)
        .first()
    )
    if chosen:
        return ModelProfile.objects.get(pk=chosen)
    ollama = ModelProfile.objects.filter(name="ollama-local").first()
    if ollama is not None and ollama_answers(ollama.base_url):
        return ollama
    profile = ModelProfile.objects.filter(name="scripted-demo").first() or ModelProfile.objects.order_by("pk").first()
    if profile is None:
        raise EngineError("No model profile is configured; run `manage.py orket_seed`.", code="no_profile")
    return profile


def team_for(epic: Epic) -> Team:
    name = epic.team or "standard"
    team = Team.objects.filter(name=name).first()
    if team is None:
        raise EngineError(f"The epic names team {name!r}, which does not exist.", code="unknown_team")
    return team


@transaction.atomic
def run_start(
    *,
    epic: Epic,
    user: Any = None,
    profile: ModelProfile | None = None,
    card: Card | None = None,
    max_parallel: int = 2,
) -> Run:
    """Create a run of the epic (or of one of its cards) and schedule it."""
    gate = epic_run_gate(epic)
    if not gate.allowed:
        raise EngineError(gate.reason, code=gate.code or "complexity_gate")
    if card is not None and card.epic_id != epic.pk:
        raise EngineError("That card is not in this epic.", code="wrong_epic")
    active = Run.objects.select_for_update().filter(epic=epic, status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
    if active.exists():
        raise EngineError(f"Run {active.first().pk} of this epic is still active.", code="run_active")
    run = Run.objects.create(
        project_id=epic.project_id,
        epic=epic,
        card=card,
        team=team_for(epic),
        model_profile=profile or default_profile(epic.project_id),
        requested_by=user,
        max_parallel=max_parallel,
    )
    event_append(
        run.pk,
        "run.status",
        status=run.status,
        reason="queued",
        model=run.model_profile.name,
        provider=run.model_profile.provider,
    )
    _announce_run_changed(run)
    _dispatch_advance(run.pk)
    return run


@transaction.atomic
def run_cancel(*, run: Run) -> Run:
    locked = Run.objects.select_for_update().get(pk=run.pk)
    if locked.is_final:
        return locked
    locked.cancel_requested = True
    locked.save(update_fields=["cancel_requested"])
    queued = list(Turn.objects.filter(run=locked, status=TurnStatus.QUEUED).values_list("pk", flat=True))
    Turn.objects.filter(pk__in=queued).update(status=TurnStatus.CANCELED, outcome="run canceled before it started")
    event_append(locked.pk, "run.cancel_requested")
    _dispatch_advance(locked.pk)
    return locked


def _finish_run(run: Run, status: str, reason: str) -> bool:
    """Write the terminal status once; later attempts change nothing."""
    updated = Run.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=status, status_reason=reason, finished_at=timezone.now()
    )
    if updated:
        event_append(run.pk, "run.status", status=status, reason=reason)
        _announce_run_changed(run)
    return bool(updated)


def _announce_run_changed(run: Run) -> None:
    """Tell the project's board, after commit, that a run changed status."""
    project_id, run_id = run.project_id, run.pk
    transaction.on_commit(lambda: _publish_run_changed(project_id, run_id))


def _publish_run_changed(project_id: int, run_id: int) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from boards.events import project_group

    try:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(
                project_group(project_id), {"type": "run.event", "kind": "run.changed", "run": run_id}
            )
    except Exception:
        logger.warning("could not publish run change for run %s", run_id, exc_info=True)


def _run_cards(run: Run) -> list[Card]:
    if run.card_id is not None:
        return list(Card.objects.filter(pk=run.card_id))
    return list(Card.objects.filter(epic_id=run.epic_id).order_by("rank", "id"))


def _blocked_summary(cards: list[Card]) -> str:
    lines = []
    for card in cards:
        if card.status in machine.FINAL_STATUSES:
            continue
        why = f" ({card.wait_reason})" if card.wait_reason else ""
        lines.append(f"card #{card.pk} {card.title!r} is {card.status}{why}")
    return "Nothing more can progress: " + "; ".join(lines) + "."


@transaction.atomic
def run_advance(*, run_id: int) -> Run | None:
    """Look at the run and its cards, start turns for what can be worked, or finish the run."""
    run = Run.objects.select_for_update().filter(pk=run_id).first()
    if run is None or run.is_final:
        return run
    active = Turn.objects.filter(run=run, status__in=TURN_ACTIVE_STATUSES).count()
    if run.cancel_requested:
        if active == 0:
            _finish_run(run, RunStatus.CANCELED, "Canceled on request.")
        return run
    if run.status == RunStatus.QUEUED:
        run.status, run.started_at = RunStatus.RUNNING, timezone.now()
        run.save(update_fields=["status", "started_at"])
        event_append(run.pk, "run.status", status=run.status, reason="started")
        _announce_run_changed(run)
    cards = _run_cards(run)
    if cards and all(card.status in machine.FINAL_STATUSES for card in cards):
        done = sum(card.status == machine.DONE for card in cards)
        if run.card_id is None:
            _finish_epic(run)  # before the final status: a run's last event is always its final status
        _finish_run(run, RunStatus.SUCCEEDED, f"All {len(cards)} cards are finished ({done} done).")
        return run
    if run.tokens_in + run.tokens_out >= run.token_budget:
        if active == 0:
            _finish_run(run, RunStatus.FAILED, f"The run's token budget of {run.token_budget} is spent.")
        return run
    waiting_for_model = _cards_waiting_for_model(run, cards)
    if waiting_for_model and model_server_answers(run.model_profile):
        for card in waiting_for_model:
            _resume_card(run, card)
        waiting_for_model = []
    waiting = gitea_hooks.cards_waiting_for_review(cards)  # linked projects: people review in Gitea
    started = _start_turns(run, [card for card in cards if card.pk not in waiting], slots=run.max_parallel - active)
    if active == 0 and started == 0:
        if waiting_for_model:
            # The model server is down: the run waits, and beat's reaper advances idle runs again
            # every ORKET_REAP_SECONDS, which resumes the cards once the server answers.
            return run
        if waiting and all(card.status in machine.FINAL_STATUSES or card.pk in waiting for card in cards):
            _finish_run(
                run, RunStatus.SUCCEEDED, f"The agents' work is done; {len(waiting)} card(s) await review in Gitea."
            )
        else:
            _finish_run(run, RunStatus.FAILED, _blocked_summary(cards))
    return run


def _cards_waiting_for_model(run: Run, cards: list[Card]) -> list[Card]:
    """Cards this run blocked with wait_reason resource because the model server was unreachable
    (their latest turn in the run failed with TurnFailure.MODEL_UNAVAILABLE), and nobody has moved since."""
    blocked = {card.pk: card for card in cards if card.status == machine.BLOCKED and card.wait_reason == "resource"}
    if not blocked:
        return []
    latest: dict[int, str] = {}
    for card_id, failure in (
        Turn.objects.filter(run=run, card_id__in=blocked).order_by("number").values_list("card_id", "failure")
    ):
        latest[card_id] = failure
    return [card for pk, card in blocked.items() if latest.get(pk) == TurnFailure.MODEL_UNAVAILABLE]


def _resume_card(run: Run, card: Card) -> None:
    reason = "The model server answers again; work on the card resumes."
    board_services.card_transition(card=card, to_status=machine.IN_PROGRESS, actor=Actor.orket("engine"), reason=reason)
    event_append(run.pk, "card.resumed", card_id=card.pk, reason=reason)


def _finish_epic(run: Run) -> None:
    """Every card of the epic is finished: the epic is done too (the state machine checks it)."""
    epic = Epic.objects.get(pk=run.epic_id)
    if epic.status not in (machine.IN_PROGRESS, machine.CODE_REVIEW):
        return
    try:
        board_services.card_transition(
            card=epic, to_status=machine.DONE, actor=Actor.orket("engine"), reason=f"Run {run.pk} finished every card."
        )
    except OrketError as refused:
        event_append(run.pk, "epic.not_finished", reason=refused.message)
        return
    event_append(run.pk, "epic.status", status=machine.DONE)


def _candidates(run: Run, cards: list[Card]) -> list[Card]:
    by_id = {card.pk: card for card in cards}
    order: list[int] = []
    if run.card_id is None:
        order = epic_schedule(run.epic)
    else:
        card = by_id.get(run.card_id)
        deps_done = (
            not CardDependency.objects.filter(card_id=run.card_id).exclude(depends_on__status=machine.DONE).exists()
        )
        if card is not None and (card.status != machine.READY or deps_done):
            order = [card.pk]
    in_progress = [card.pk for card in cards if card.status in (machine.IN_PROGRESS, machine.READY_FOR_TESTING)]
    ordered = [pk for pk in order if by_id.get(pk) and by_id[pk].status == machine.CODE_REVIEW]
    ordered += in_progress + [pk for pk in order if pk not in ordered]
    return [by_id[pk] for pk in dict.fromkeys(ordered) if pk in by_id]


def _start_turns(run: Run, cards: list[Card], slots: int) -> int:
    if slots <= 0:
        return 0
    busy = set(Turn.objects.filter(card__in=cards, status__in=TURN_ACTIVE_STATUSES).values_list("card_id", flat=True))
    counts = dict(
        Turn.objects.filter(run=run).values_list("card_id").annotate(n=Count("id")).values_list("card_id", "n")
    )
    started = 0
    for card in _candidates(run, cards):
        if started >= slots:
            break
        if card.pk in busy:
            continue
        if counts.get(card.pk, 0) >= run.turns_per_card:
            _block_card(run, card, "input", f"The card used its budget of {run.turns_per_card} turns in this run.")
            continue
        try:
            seat, role = choose_seat(run.team, card)
        except EngineError as error:
            _block_card(run, card, "input", error.message)
            continue
        try:
            with transaction.atomic():
                turn = Turn.objects.create(
                    run=run,
                    card=card,
                    number=counts.get(card.pk, 0) + 1,
                    seat=seat,
                    role=role.name,
                    model=model_label(run.model_profile),
                    provider=run.model_profile.provider,
                )
        except IntegrityError:
            continue  # another run or advance already has an active turn on this card
        event_append(
            run.pk, "turn.queued", turn_id=turn.pk, card_id=card.pk, seat=seat, role=role.name, number=turn.number
        )
        _dispatch_turn(turn.pk)
        started += 1
    return started


def _block_card(run: Run, card: Card, wait_reason: str, report: str) -> None:
    """Block a card on Orket's account, with a report saying why. Blocking is reached through
    in_progress, as the state machine requires."""
    engine = Actor.orket("engine")
    if card.status in (machine.READY, machine.CODE_REVIEW, machine.READY_FOR_TESTING):
        card = board_services.card_transition(
            card=card, to_status=machine.IN_PROGRESS, actor=engine, reason="Returned to work to be blocked."
        )
    if card.status == machine.IN_PROGRESS:
        board_services.card_transition(
            card=card, to_status=machine.BLOCKED, actor=engine, wait_reason=wait_reason, reason=report
        )
    board_services.comment_add(card=card, actor=engine, body=f"Blocked by Orket: {report}")
    event_append(run.pk, "card.blocked", card_id=card.pk, wait_reason=wait_reason, report=report)


def choose_seat(team: Team, card: Card) -> tuple[str, Role]:
    """Review states go to a finalizing seat that did not do the last work; others to the card's seat."""
    seats = list(team.seats.prefetch_related("roles").order_by("order", "name"))
    if card.status in (machine.CODE_REVIEW, machine.READY_FOR_TESTING):
        for seat in seats:
            finalizing = [role for role in seat.roles.all() if role.can_finalize]
            if finalizing and seat.name != card.last_worked_by_seat:
                return seat.name, finalizing[0]
        raise EngineError(f"Team {team.name!r} has no finalizing seat other than {card.last_worked_by_seat!r}.")
    named = [seat for seat in seats if seat.name == card.seat]
    workers = named or [
        seat
        for seat in seats
        if any("write_file" in role.allowed_tools and not role.can_finalize for role in seat.roles.all())
    ]
    for seat in workers:
        roles = [role for role in seat.roles.all() if not role.can_finalize] or list(seat.roles.all())
        if roles:
            return seat.name, roles[0]
    raise EngineError(f"Team {team.name!r} has no seat that can work card #{card.pk}.")


# ---------------------------------------------------------------------------------------------
# Turn leases
# ---------------------------------------------------------------------------------------------


def turn_claim(*, turn_id: int, owner: str) -> Turn | None:
    """Take a queued turn (compare-and-set); None when someone else has it or it is no longer queued."""
    now = timezone.now()
    claimed = Turn.objects.filter(pk=turn_id, status=TurnStatus.QUEUED).update(
        status=TurnStatus.RUNNING,
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=LEASE_SECONDS),
        heartbeat_at=now,
        started_at=now,
    )
    if not claimed:
        return None
    Turn.objects.filter(pk=turn_id).update(attempts=F("attempts") + 1)
    return Turn.objects.select_related("run", "run__model_profile", "run__team", "card").get(pk=turn_id)


def turn_heartbeat(*, turn_id: int, owner: str) -> bool:
    """Extend the lease; False when the lease was lost (the turn was reaped and maybe re-run)."""
    now = timezone.now()
    return bool(
        Turn.objects.filter(pk=turn_id, status=TurnStatus.RUNNING, lease_owner=owner).update(
            lease_expires_at=now + timedelta(seconds=LEASE_SECONDS), heartbeat_at=now
        )
    )


def turns_reap_stale() -> int:
    """Return running turns whose lease expired to the queue (or fail them after too many attempts)."""
    now = timezone.now()
    reaped = 0
    for turn in Turn.objects.filter(status=TurnStatus.RUNNING, lease_expires_at__lt=now).select_related("run"):
        with transaction.atomic():
            if turn.attempts >= MAX_TURN_ATTEMPTS:
                changed = Turn.objects.filter(
                    pk=turn.pk, status=TurnStatus.RUNNING, lease_owner=turn.lease_owner
                ).update(
                    status=TurnStatus.FAILED,
                    finished_at=now,
                    outcome=f"The worker holding this turn stopped answering {turn.attempts} times.",
                )
                if changed:
                    event_append(
                        turn.run_id,
                        "turn.failed",
                        turn_id=turn.pk,
                        card_id=turn.card_id,
                        reason="lease expired too many times",
                    )
                    _dispatch_advance(turn.run_id)
            else:
                changed = Turn.objects.filter(
                    pk=turn.pk, status=TurnStatus.RUNNING, lease_owner=turn.lease_owner
                ).update(status=TurnStatus.QUEUED, lease_owner="", lease_expires_at=None, queued_at=now)
                if changed:
                    event_append(
                        turn.run_id,
                        "turn.requeued",
                        turn_id=turn.pk,
                        card_id=turn.card_id,
                        reason=f"the lease of {turn.lease_owner} expired",
                    )
                    _dispatch_turn(turn.pk)
            reaped += changed
    _redispatch_lost_work(now)
    return reaped


def _redispatch_lost_work(now: Any) -> None:
    """Tasks can be lost with the worker that had reserved them. The database says what is owed:
    queued turns nobody claimed within a lease are dispatched again (claiming is idempotent), and
    active runs with no active turn are advanced again."""
    stale = now - timedelta(seconds=LEASE_SECONDS)
    with transaction.atomic():
        for turn_id in Turn.objects.filter(status=TurnStatus.QUEUED, queued_at__lt=stale).values_list("pk", flat=True):
            Turn.objects.filter(pk=turn_id, status=TurnStatus.QUEUED).update(queued_at=now)
            _dispatch_turn(turn_id)
        idle_runs = Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exclude(
            turns__status__in=TURN_ACTIVE_STATUSES
        )
        for run_id in idle_runs.values_list("pk", flat=True).distinct():
            _dispatch_advance(run_id)


def turns_requeue_orphans() -> int:
    """At start-up of the embedded default, whose in-memory queue was lost: dispatch queued turns
    again and advance active runs. The database, not the broker, is the record."""
    count = 0
    with transaction.atomic():
        for turn_id in Turn.objects.filter(status=TurnStatus.QUEUED).values_list("pk", flat=True):
            _dispatch_turn(turn_id)
            count += 1
        for run_id in Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).values_list("pk", flat=True):
            _dispatch_advance(run_id)
    return count


# ---------------------------------------------------------------------------------------------
# Executing a turn
# ---------------------------------------------------------------------------------------------


@dataclass
class ModelAnswer:
    text: str
    reasoning: str
    native_calls: list[Any]
    tokens_in: int
    tokens_out: int
    first_token_ms: int | None


def _workspace_for(card: Card) -> ProjectWorkspace:
    workspace = ProjectWorkspace(project_workspace_root(settings.DATA_DIR, card.project_id))
    workspace.ensure()
    return workspace


def _verification(card: Card) -> dict[str, Any]:
    """The run_verification tool: the card's fixture, run now in isolation (bounded by its timeout)."""
    from sandboxes.verification import verification_for_agent

    return verification_for_agent(card=card, requested_by="agent")


def prompt_context(
    *, card: Card, team: Team, seat: str, role: Role, profile: ModelProfile, diff: str = ""
) -> PromptContext:
    """Everything the prompt compiler needs for `seat` acting as `role` on `card`."""
    dialect = profile.dialect
    depends = CardDependency.objects.filter(card_id=card.pk).select_related("depends_on")
    notes = [
        f"{note.from_seat}: {note.body}"
        for note in SeatNote.objects.filter(card=card).filter(Q(to_seat=seat) | Q(to_seat="all")).order_by("id")
    ]
    # Review feedback is what finalizing seats wrote about this card; both the worker and the
    # reviewer see every round of it.
    reviewers = team.seats.filter(roles__can_finalize=True).values_list("name", flat=True)
    feedback = [note.body for note in SeatNote.objects.filter(card=card, from_seat__in=list(reviewers)).order_by("id")]
    governance = card.epic.architecture_governance or card.project.architecture_governance
    return PromptContext(
        role_name=role.name,
        role_intent=role.intent,
        responsibilities=list(role.responsibilities),
        role_constraints=list(role.constraints),
        allowed_tools=list(role.allowed_tools),
        can_finalize=role.can_finalize,
        seat=seat,
        dialect=DialectContext(
            model_family=dialect.model_family,
            output_format=dialect.output_format,
            constraints=list(dialect.constraints),
            guardrail=dialect.guardrail,
        )
        if dialect
        else None,
        governance_on=governance,
        ethos=ETHOS,
        card=CardContext(
            id=card.pk,
            title=card.title,
            description=card.description,
            status=card.status,
            requirements=card.requirements,
            acceptance_criteria=card.acceptance_criteria,
            labels=list(card.labels),
            epic_name=card.epic.name,
            seat=card.seat,
        ),
        dependency_outcomes=[
            (d.depends_on_id, d.depends_on.title, d.depends_on.status, d.depends_on.note) for d in depends
        ],
        notes=notes,
        latest_verification=card.last_verification or None,
        review_feedback=feedback,
        diff=diff,
        native_tools=profile.supports_native_tools,
    )


def _provider(profile: ModelProfile) -> Any:
    if profile.provider == ModelProfile.Provider.SCRIPTED:
        speed = profile.tokens_per_second or float(os.environ.get("ORKET_SCRIPTED_TOKENS_PER_SECOND", "0")) or None
        return provider_for("scripted", replies=scripted_reply, tokens_per_second=speed)
    return provider_for(profile.provider)


def model_label(profile: ModelProfile) -> str:
    """What to show as the model's name: a scripted profile is never passed off as a real model."""
    return "scripted" if profile.provider == ModelProfile.Provider.SCRIPTED else profile.model


class LeaseLost(Exception):
    pass


class LeaseKeeper:
    """Extends a turn's lease from a background thread for as long as the turn runs, so a model
    that takes minutes before its first token (a long prompt on a local model) never looks dead.
    When the process dies the heartbeats stop with it, and the lease expires as it should."""

    def __init__(self, turn_id: int, owner: str) -> None:
        self.turn_id, self.owner = turn_id, owner
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"orket-lease-{turn_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(HEARTBEAT_SECONDS + 5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(HEARTBEAT_SECONDS):
                try:
                    held = turn_heartbeat(turn_id=self.turn_id, owner=self.owner)
                except (db.OperationalError, db.InterfaceError):
                    # A database blip: try again at the next beat. If the lease ran out meanwhile,
                    # that beat finds it taken and the turn stops.
                    logger.warning("turn %s: heartbeat could not reach the database", self.turn_id)
                    db.connection.close()
                    continue
                if not held:
                    self.lost.set()
                    return
        finally:
            db.connection.close()


class _Watch:
    """Notices, between streamed chunks, that the run was canceled or the lease was lost."""

    def __init__(self, turn: Turn, keeper: LeaseKeeper) -> None:
        self.turn, self.keeper = turn, keeper
        self._checked = time.monotonic()

    def check(self) -> None:
        if self.keeper.lost.is_set():
            raise LeaseLost
        now = time.monotonic()
        if now - self._checked < CANCEL_CHECK_SECONDS:
            return
        self._checked = now
        if Run.objects.filter(pk=self.turn.run_id, cancel_requested=True).exists():
            raise RunCanceled


def _call_model(
    run: Run, turn: Turn, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, watch: _Watch
) -> ModelAnswer:
    profile = run.model_profile
    request = ChatRequest(
        messages=messages,
        model=profile.model,
        base_url=profile.base_url,
        temperature=profile.temperature,
        seed=profile.seed,
        context_size=profile.context_size,
        max_tokens=profile.max_tokens,
        timeout=profile.timeout_seconds,
        tools=tools if profile.supports_native_tools else None,
        api_key=profile.api_key(),
    )
    text = TextCoalescer(run.pk, turn.pk, turn.card_id)
    thinking = TextCoalescer(run.pk, turn.pk, turn.card_id, kind="reasoning")
    started = time.monotonic()
    answer = ModelAnswer("", "", [], 0, 0, None)
    policy = RetryPolicy(attempts=profile.retry_attempts, base_delay=profile.retry_base_delay)
    for event in stream_with_retry(_provider(profile), request, policy):
        watch.check()
        now = time.monotonic()
        if isinstance(event, TextDelta | ReasoningDelta) and answer.first_token_ms is None:
            answer.first_token_ms = int((now - started) * 1000)
        if isinstance(event, TextDelta):
            answer.text += event.text
            text.add(event.text, now)
        elif isinstance(event, ReasoningDelta):
            answer.reasoning += event.text
            thinking.add(event.text, now)
        elif isinstance(event, ToolCallsDone):
            answer.native_calls = list(event.calls)
        elif isinstance(event, Finished):
            answer.tokens_in, answer.tokens_out = event.prompt_tokens or 0, event.completion_tokens or 0
        elif isinstance(event, Retrying):
            text.flush()
            event_append(
                run.pk,
                "model.retry",
                turn_id=turn.pk,
                card_id=turn.card_id,
                attempt=event.attempt,
                error=str(event.error),
                delay_seconds=round(event.delay, 2),
            )
            if event.discard_output:
                answer = ModelAnswer("", "", [], 0, 0, answer.first_token_ms)
    text.flush()
    thinking.flush()
    return answer


def _signature(name: str, arguments: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([name, arguments], sort_keys=True, default=str).encode()).hexdigest()


def _previous_signatures(turn: Turn) -> list[str]:
    signatures: list[str] = []
    for calls in (
        Turn.objects.filter(card_id=turn.card_id, run_id=turn.run_id, number__lt=turn.number)
        .order_by("number")
        .values_list("tool_calls", flat=True)
    ):
        signatures += [call.get("signature", "") for call in calls or []]
    return signatures


def _previous_turn_refused(turn: Turn) -> bool:
    previous = Turn.objects.filter(card_id=turn.card_id, run_id=turn.run_id, number=turn.number - 1).first()
    return bool(previous and any(call.get("decision") == "refused" for call in previous.tool_calls or []))


def turn_execute(*, turn_id: int) -> None:
    """Claim and execute one turn; safe to call twice for the same turn."""
    owner = worker_identity()
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
        # queues it again, and the next attempt resumes from the answer and calls it journaled.
        logger.warning("turn %s: the database became unreachable; the turn resumes after its lease", turn.pk)
        return
    except Exception as error:
        # An Orket bug must not leave a turn shown as running or stop the worker: record it, block
        # the card with the reason, and let the run go on with its other cards.
        logger.exception("turn %s failed inside Orket", turn.pk)
        message = f"Orket hit an internal error in this turn: {type(error).__name__}: {error}"
        if _finish_turn(turn, owner, TurnStatus.FAILED, message, started):
            _block_card(run, Card.objects.get(pk=turn.card_id), "input", message)
    with transaction.atomic():
        _dispatch_advance(run.pk)


def _finish_turn(turn: Turn, owner: str, status: str, outcome: str, started: float, **fields: Any) -> bool:
    fields = {name: scrub(value) for name, value in fields.items()}
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
    event_append(
        run.pk,
        "turn.started",
        turn_id=turn.pk,
        card_id=card.pk,
        number=turn.number,
        seat=turn.seat,
        role=role.name,
        model=turn.model,
        provider=turn.provider,
        attempt=turn.attempts,
    )
    roles = (role.name, "project_manager") if role.is_project_manager else (role.name,)
    actor = Actor.for_seat(turn.seat, roles, can_finalize=role.can_finalize and gitea_hooks.agents_may_finalize(card))
    try:
        if card.status == machine.READY:
            board_services.card_transition(
                card=card,
                to_status=machine.IN_PROGRESS,
                actor=actor,
                reason=f"Run {run.pk} turn {turn.number} started.",
            )
        workspace = _workspace_for(card)
        worktree = workspace.card_worktree(card.pk)
        if turn.answer_recorded_at is not None:
            answer = _recorded_answer(run, turn)
        else:
            diff = workspace.card_diff(card.pk) if role.can_finalize else ""
            context = prompt_context(
                card=card, team=run.team, seat=turn.seat, role=role, profile=run.model_profile, diff=diff
            )
            prompt = compile_prompt(context)
            Turn.objects.filter(pk=turn.pk).update(messages=prompt.messages)
            watch = _Watch(turn, keeper)
            answer = _call_model(run, turn, prompt.messages, prompt.tools, watch)
            _record_answer(run, turn, owner, answer)
    except RunCanceled:
        _finish_turn(turn, owner, TurnStatus.CANCELED, "The run was canceled during the turn.", started)
        return
    except LeaseLost:
        logger.warning("turn %s: lease lost to another worker; abandoning this attempt", turn.pk)
        return
    except ProviderError as error:
        if error.retryable:  # an outage (refused, timed out, 429, 5xx): wait for the server, then resume
            _finish_turn(
                turn,
                owner,
                TurnStatus.FAILED,
                f"{MODEL_UNAVAILABLE}: {error}",
                started,
                failure=TurnFailure.MODEL_UNAVAILABLE,
            )
            report = f"The model call failed: {error}. The card resumes when the model server answers again."
        else:
            _finish_turn(turn, owner, TurnStatus.FAILED, f"The model could not be reached: {error}", started)
            report = f"The model call failed: {error}"
        _block_card(run, Card.objects.get(pk=card.pk), "resource", report)
        return
    except OrketError as error:
        _finish_turn(turn, owner, TurnStatus.FAILED, f"The turn could not start: {error.message}", started)
        _block_card(run, Card.objects.get(pk=card.pk), "input", error.message)
        return
    try:
        records, outcome, files = _act(run, turn, owner, card, role, actor, worktree, answer)
    except LeaseLost:
        logger.warning("turn %s: lease lost to another worker while acting; abandoning this attempt", turn.pk)
        return
    sha = ""
    if files:
        sha = (
            workspace.commit_card(card.pk, seat=turn.seat, message=f"card {card.pk}: {turn.role} turn {turn.number}")
            or ""
        )
    finished = _finish_turn(
        turn,
        owner,
        TurnStatus.SUCCEEDED,
        outcome,
        started,
        raw_answer=answer.text,
        reasoning=answer.reasoning,
        tool_calls=records,
        tokens_in=answer.tokens_in,
        tokens_out=answer.tokens_out,
        time_to_first_token_ms=answer.first_token_ms,
        commit_sha=sha,
    )
    if finished:
        _after_turn(run, turn, role, actor, workspace, records, files, sha)


def _record_answer(run: Run, turn: Turn, owner: str, answer: ModelAnswer) -> None:
    """Store the whole answer and count its tokens, once and together: if this attempt stops before
    the turn finishes, the next attempt acts on this answer instead of asking the model again."""
    with transaction.atomic():
        stored = Turn.objects.filter(pk=turn.pk, status=TurnStatus.RUNNING, lease_owner=owner).update(
            raw_answer=scrub(answer.text),
            reasoning=scrub(answer.reasoning),
            native_calls=scrub([asdict(call) for call in answer.native_calls]),
            tokens_in=answer.tokens_in,
            tokens_out=answer.tokens_out,
            time_to_first_token_ms=answer.first_token_ms,
            answer_recorded_at=timezone.now(),
            tool_calls=[],
        )
        if not stored:
            raise LeaseLost
        Run.objects.filter(pk=run.pk).update(
            tokens_in=F("tokens_in") + answer.tokens_in, tokens_out=F("tokens_out") + answer.tokens_out
        )


def _recorded_answer(run: Run, turn: Turn) -> ModelAnswer:
    """The answer an earlier attempt of this turn stored; its tokens were counted then."""
    event_append(
        run.pk,
        "turn.resumed",
        turn_id=turn.pk,
        card_id=turn.card_id,
        calls_done=len(turn.tool_calls),
        reason="An earlier attempt stored the model's answer; the calls it recorded are not made again.",
    )
    return ModelAnswer(
        text=turn.raw_answer,
        reasoning=turn.reasoning,
        native_calls=[ToolCall(**call) for call in turn.native_calls],
        tokens_in=turn.tokens_in,
        tokens_out=turn.tokens_out,
        first_token_ms=turn.time_to_first_token_ms,
    )


def _journal(turn: Turn, owner: str, records: list[dict[str, Any]]) -> None:
    """Store the records of the calls decided so far, as long as this worker still holds the turn."""
    stored = Turn.objects.filter(pk=turn.pk, status=TurnStatus.RUNNING, lease_owner=owner).update(
        tool_calls=scrub(records)
    )
    if not stored:
        raise LeaseLost


# Tools whose effect is database rows: the effect and its record commit together, so it happens once.
BOARD_TOOLS = frozenset({"add_comment", "update_card_status", "create_card", "add_note"})
FILE_TOOLS = frozenset({"write_file", "delete_file"})


def _act(
    run: Run, turn: Turn, owner: str, card: Card, role: Role, actor: Actor, worktree: Path, answer: ModelAnswer
) -> tuple[list[dict[str, Any]], str, set[str]]:
    """Make the answer's tool calls through the gate. Each call's record is journaled on the turn as
    soon as it is decided, so an attempt that resumes this turn skips the calls already made."""
    parsed = parse_tool_calls(answer.text, answer.native_calls or None)
    for problem in parsed.problems:
        event_append(run.pk, "parse.problem", turn_id=turn.pk, card_id=card.pk, message=str(problem))
    governance = card.epic.architecture_governance or card.project.architecture_governance
    context = ToolContext(
        card=card,
        actor=actor,
        workspace=worktree,
        seats=list(run.team.seats.values_list("name", flat=True)),
        verification=_verification,
    )
    history = _previous_signatures(turn)
    done = list(turn.tool_calls) if turn.answer_recorded_at is not None else []
    records: list[dict[str, Any]] = []
    refusals = 0
    for index, call in enumerate(parsed.calls):
        if index < len(done):
            record = done[index]
            records.append(record)
            if record.get("rule") == "loop":
                return records, "Blocked: the same tool call was repeated three times.", context.files_changed
            refusals += record.get("decision") == "refused"
            if record.get("decision") == "executed" and record.get("name") in FILE_TOOLS:
                context.files_changed.add(str(record["arguments"].get("path", "")))
            continue
        arguments = scrub(call.arguments)
        signature = _signature(call.name, arguments)
        record: dict[str, Any] = {"name": call.name, "arguments": arguments, "signature": signature}
        records.append(record)
        event_append(run.pk, "tool.call", turn_id=turn.pk, card_id=card.pk, name=call.name, arguments=arguments)
        recent = (history + [r["signature"] for r in records])[-LOOP_REPEATS:]
        if len(recent) == LOOP_REPEATS and len(set(recent)) == 1:
            record.update(decision="refused", rule="loop", message="The same call was made three times in a row.")
            with transaction.atomic():
                event_append(
                    run.pk,
                    "tool.refused",
                    turn_id=turn.pk,
                    card_id=card.pk,
                    name=call.name,
                    rule="loop",
                    message=record["message"],
                )
                _block_with_report(
                    run,
                    card,
                    "input",
                    call.name,
                    "loop",
                    record["message"],
                    "Change the approach instead of repeating the call.",
                )
                _journal(turn, owner, records)
            return records, "Blocked: the same tool call was repeated three times.", context.files_changed
        decision = check_call(
            call.name,
            arguments,
            allowed_tools=list(role.allowed_tools),
            calls_in_turn=index,
            governance_on=governance,
        )
        if not decision.allowed:
            refusals += 1
            record.update(decision="refused", rule=decision.rule, message=decision.message, fix=decision.fix)
            with transaction.atomic():
                event_append(
                    run.pk,
                    "tool.refused",
                    turn_id=turn.pk,
                    card_id=card.pk,
                    name=call.name,
                    rule=decision.rule,
                    message=decision.message,
                    fix=decision.fix,
                )
                _journal(turn, owner, records)
            continue
        refusals += _execute_and_journal(run, turn, owner, context, call.name, arguments, records)
    if refusals:
        refused = [r for r in records if r.get("decision") == "refused"]
        first = refused[0]
        if _previous_turn_refused(turn):
            _block_with_report(
                run,
                card,
                "input",
                first["name"],
                first.get("rule", ""),
                first.get("message", ""),
                first.get("fix", "Follow the rule named in the refusal."),
            )
            return records, "Blocked: governance refused calls in two turns in a row.", context.files_changed
        SeatNote.objects.create(
            card=card,
            from_seat="orket",
            to_seat=turn.seat,
            body="Refused: " + "; ".join(f"{r['name']}: {r.get('message', '')}" for r in refused),
        )
    if not parsed.calls:
        return records, "The model made no tool calls.", context.files_changed
    executed = sum(r.get("decision") == "executed" for r in records)
    return records, f"{executed} of {len(records)} calls executed.", context.files_changed


def _execute_and_journal(
    run: Run,
    turn: Turn,
    owner: str,
    context: ToolContext,
    name: str,
    arguments: dict[str, Any],
    records: list[dict[str, Any]],
) -> int:
    """Execute one approved call and journal its record; 1 when governance refused it, else 0.

    A board tool's rows, its events and its record commit in one transaction, so a crash either
    leaves no trace of the call (it is made again) or the record too (it is not). File tools are
    idempotent and verification only reads, so those run outside the transaction."""
    record = records[-1]
    try:
        if name in BOARD_TOOLS:
            with transaction.atomic():
                result = execute_tool(context, name, arguments)
                _record_result(run, turn, owner, name, record, result, records)
        else:
            result = execute_tool(context, name, arguments)
            with transaction.atomic():
                _record_result(run, turn, owner, name, record, result, records)
    except ToolFailed as failed:
        record.update(
            decision="failed" if not failed.governance else "refused", rule=failed.rule, message=failed.message
        )
        with transaction.atomic():
            event_append(
                run.pk,
                "tool.refused" if failed.governance else "tool.error",
                turn_id=turn.pk,
                card_id=turn.card_id,
                name=name,
                rule=failed.rule,
                message=failed.message,
            )
            _journal(turn, owner, records)
        return int(failed.governance)
    return 0


def _record_result(
    run: Run,
    turn: Turn,
    owner: str,
    name: str,
    record: dict[str, Any],
    result: dict[str, Any],
    records: list[dict[str, Any]],
) -> None:
    record.update(decision="executed", result=result)
    event_append(run.pk, "tool.result", turn_id=turn.pk, card_id=turn.card_id, name=name, result=result)
    if name == "update_card_status":
        event_append(run.pk, "card.status", card_id=turn.card_id, status=result["status"], seat=turn.seat)
    _journal(turn, owner, records)


def _block_with_report(run: Run, card: Card, wait_reason: str, tool: str, rule: str, message: str, fix: str) -> None:
    report = f"Attempted {tool}; refused by rule {rule}: {message} What would fix it: {fix}"
    _block_card(run, Card.objects.get(pk=card.pk), wait_reason, report)


def _after_turn(
    run: Run,
    turn: Turn,
    role: Role,
    actor: Actor,
    workspace: ProjectWorkspace,
    records: list[dict[str, Any]],
    files: set[str],
    sha: str,
) -> None:
    card = Card.objects.get(pk=turn.card_id)
    if sha:
        event_append(run.pk, "workspace.commit", turn_id=turn.pk, card_id=card.pk, sha=sha, files=sorted(files))
    if card.status == machine.IN_PROGRESS and files and not role.can_finalize:
        board_services.card_transition(
            card=card,
            to_status=machine.CODE_REVIEW,
            actor=actor,
            reason=f"Turn {turn.number} changed {len(files)} files.",
        )
        event_append(run.pk, "card.status", card_id=card.pk, status=machine.CODE_REVIEW, seat=turn.seat)
    gitea_hooks.turn_finished(card_id=card.pk, seat=turn.seat, can_finalize=role.can_finalize, outcome=turn.outcome)
    card.refresh_from_db()
    if card.status == machine.DONE:
        try:
            merge = workspace.merge_card(card.pk)
            event_append(run.pk, "workspace.merged", card_id=card.pk, sha=merge)
        except Exception as error:
            event_append(run.pk, "workspace.merge_failed", card_id=card.pk, message=str(error))
