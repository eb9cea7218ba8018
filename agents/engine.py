"""Runs: starting, advancing, canceling and finishing the runs of an epic (or of one of its cards).

`run_advance` looks at a run's cards and either queues turns for the work that can go on (choosing
each card's seat, blocking cards that cannot go on) or finishes the run, and the epic with it. Runs
and turns are database rows first: Celery tasks only carry their ids, and are handed over after
commit through agents.dispatch. Views, tasks, commands and the Gitea integration start, cancel and advance
runs through agents.services. Claiming and leasing turns lives in `agents.leases`, executing them in
`agents.turns`.
Every visible happening becomes a run event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from agents import dispatch, outbound_policy, phase_timer
from agents.approvals import approvals_cancel
from agents.errors import EngineError, ReviewByPerson
from agents.gitea import hooks as gitea_hooks
from agents.models import (
    TURN_ACTIVE_STATUSES,
    EpicAgentSettings,
    ModelProfile,
    ProjectAgentSettings,
    Role,
    Run,
    RunStatus,
    Seat,
    Team,
    Turn,
    TurnFailure,
    TurnStatus,
)
from agents.providers.openai import chat_url
from agents.run_events import event_append
from agents.selectors import model_label, team_for
from agents.sources import services as source_services
from agents.sources.models import SourceRepository
from boards import machine
from boards import services as board_services
from boards.actors import Actor
from boards.events import project_group
from boards.models import Card, CardDependency, Epic
from boards.selectors import epic_run_gate, epic_schedule
from orket_site.errors import OrketError

logger = logging.getLogger(__name__)


def _probe(
    url: str, timeout: float, headers: dict[str, str] | None = None, options: dict[str, Any] | None = None
) -> int | None:
    """The status of a GET of `url`, or None when it could not be made; connections follow the
    operator's outbound policy, like the provider's own."""
    try:
        with httpx.Client(timeout=timeout, **(options or outbound_policy.http_client_options())) as client:
            return client.get(url, headers=headers or {}).status_code
    except httpx.HTTPError:
        return None


def ollama_answers(base_url: str, timeout: float = 0.5) -> bool:
    return _probe(base_url.rstrip("/") + "/api/tags", timeout) == 200


def model_server_answers(profile: ModelProfile, timeout: float = 2.0) -> bool:
    """Whether the profile's model server answers at all (any answer below 500 from its model list)."""
    if profile.provider == ModelProfile.Provider.SCRIPTED:
        return True
    if profile.provider == ModelProfile.Provider.OLLAMA:
        return _probe(profile.base_url.rstrip("/") + "/api/tags", timeout, None, profile.connection_options()) == 200
    url = chat_url(profile.base_url).removesuffix("/chat/completions") + "/models"
    key = profile.api_key()
    status = _probe(url, timeout, {"Authorization": f"Bearer {key}"} if key else None, profile.connection_options())
    return status is not None and status < 500


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


def run_start(
    *,
    epic: Epic,
    user: Any = None,
    profile: ModelProfile | None = None,
    card: Card | None = None,
    max_parallel: int = 2,
) -> Run:
    """Create a run of the epic (or of one of its cards) and schedule it. The default profile may ask
    a local Ollama whether it answers: that happens before the transaction, never inside it."""
    chosen = profile or default_profile(epic.project_id)
    with transaction.atomic():
        return _run_create(
            epic=epic, user=user, profile=chosen, override=profile is not None, card=card, max_parallel=max_parallel
        )


def _run_create(
    *, epic: Epic, user: Any, profile: ModelProfile, override: bool, card: Card | None, max_parallel: int
) -> Run:
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
        model_profile=profile,
        profile_is_override=override,
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
    dispatch.run_advance_after_commit(run_id=run.pk)
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
    approvals_cancel(run=locked)
    event_append(locked.pk, "run.cancel_requested")
    dispatch.run_advance_after_commit(run_id=locked.pk)
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


def run_advance(*, run_id: int) -> Run | None:
    """Look at the run and its cards, start turns for what can be worked, or finish the run. A run
    that has not started yet first fetches the project's source repository (outside any transaction)."""
    with phase_timer.sample("advance"), phase_timer.queries_timed(connection):
        _source_prepare(run_id)
        return _run_advance(run_id=run_id)


def _source_prepare(run_id: int) -> None:
    """Fetch the source before a queued run starts, once. A failed fetch fails the run with the reason:
    agents never work on stale code without anyone knowing."""
    run = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED, source_revision="").first()
    if run is None or not SourceRepository.objects.filter(project_id=run.project_id).exists():
        return
    try:
        fetched = source_services.source_fetch(
            project_id=run.project_id, start_branch=source_services.epic_base_branch(run.epic_id)
        )
    except OrketError as error:
        with transaction.atomic():
            locked = Run.objects.select_for_update().get(pk=run_id)
            if not locked.is_final:
                _finish_run(locked, RunStatus.FAILED, error.message)
        return
    if fetched is None:
        return
    with transaction.atomic():
        if Run.objects.filter(pk=run_id, status=RunStatus.QUEUED, source_revision="").update(
            source_revision=fetched.sha
        ):
            event_append(run_id, "source.fetched", sha=fetched.sha, branch=fetched.default_branch, note=fetched.note)


@transaction.atomic
def _run_advance(*, run_id: int) -> Run | None:
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
        if Turn.objects.filter(run=run, status=TurnStatus.WAITING).exists():
            return run  # a call waits for a person's approval; deciding it queues the turn again
        if waiting_for_model:
            # The model server is down: the run waits, and beat's reaper advances idle runs again
            # every ORKET_REAP_SECONDS, which resumes the cards once the server answers.
            return run
        cards = _run_cards(run)  # as they are now: starting turns may have blocked some of them
        if waiting and all(card.status in machine.FINAL_STATUSES or card.pk in waiting for card in cards):
            _finish_run(
                run, RunStatus.SUCCEEDED, f"The agents' work is done; {len(waiting)} card(s) await review in Gitea."
            )
        elif _only_people_review_left(cards):
            people = sum(card.wait_reason == "review" for card in cards)
            _finish_run(
                run, RunStatus.SUCCEEDED, f"The agents' work is done; {people} card(s) wait for review by a person."
            )
        else:
            _finish_run(run, RunStatus.FAILED, _blocked_summary(cards))
    return run


def _only_people_review_left(cards: list[Card]) -> bool:
    """Every card is finished or waits for a person's review, and at least one waits."""
    waiting = [card for card in cards if card.status == machine.BLOCKED and card.wait_reason == "review"]
    return bool(waiting) and all(card.status in machine.FINAL_STATUSES or card in waiting for card in cards)


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
    # A card whose turn waits for an approval is resumed by the decision, not by a new turn.
    working = [*TURN_ACTIVE_STATUSES, TurnStatus.WAITING]
    busy = set(Turn.objects.filter(card__in=cards, status__in=working).values_list("card_id", flat=True))
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
            block_card(run, card, "input", f"The card used its budget of {run.turns_per_card} turns in this run.")
            continue
        try:
            choice = choose_seat(run.team, card)
        except ReviewByPerson as wait:
            block_card(run, card, "review", wait.message)
            continue
        except EngineError as error:
            block_card(run, card, "input", error.message)
            continue
        profile = turn_profile(run, choice.seat, card)
        try:
            with transaction.atomic():
                turn = Turn.objects.create(
                    run=run,
                    card=card,
                    number=counts.get(card.pk, 0) + 1,
                    seat=choice.seat.name,
                    role=choice.role.name,
                    purpose=choice.purpose,
                    model=model_label(profile),
                    provider=profile.provider,
                    model_profile=profile,
                )
        except IntegrityError:
            continue  # another run or advance already has an active turn on this card
        event_append(
            run.pk,
            "turn.queued",
            turn_id=turn.pk,
            card_id=card.pk,
            seat=turn.seat,
            role=turn.role,
            purpose=turn.purpose,
            number=turn.number,
        )
        dispatch.turn_execute_after_commit(turn_id=turn.pk)
        started += 1
    return started


def block_card(run: Run, card: Card, wait_reason: str, report: str) -> None:
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


@dataclass(frozen=True)
class SeatChoice:
    seat: Seat
    role: Role
    purpose: str  # "work" or "review"


def choose_seat(team: Team, card: Card) -> SeatChoice:
    """What the turn is for decides the role. Review states go to a finalizing seat that did not do
    the last work; otherwise the card's assigned seat does the work, whatever roles it holds."""
    seats = list(team.seats.prefetch_related("roles").order_by("order", "name"))
    if card.status in (machine.CODE_REVIEW, machine.READY_FOR_TESTING):
        for seat in seats:
            finalizing = [role for role in seat.roles.all() if role.can_finalize]
            if finalizing and seat.name != card.last_worked_by_seat:
                return SeatChoice(seat, finalizing[0], "review")
        raise ReviewByPerson(
            f"Team {team.name!r} has no finalizing seat other than {card.last_worked_by_seat!r}, which did the "
            "work; a person must review the card."
        )
    named = [seat for seat in seats if seat.name == card.seat]
    workers = named or [
        seat
        for seat in seats
        if any("write_file" in role.allowed_tools and not role.can_finalize for role in seat.roles.all())
    ]
    for seat in workers:
        roles = [role for role in seat.roles.all() if not role.can_finalize] or list(seat.roles.all())
        if roles:
            return SeatChoice(seat, roles[0], "work")
    raise EngineError(f"Team {team.name!r} has no seat that can work card #{card.pk}.")


def turn_profile(run: Run, seat: Seat, card: Card) -> ModelProfile:
    """The model a turn uses: the run's own choice, then the seat's, then the epic's, then the project default."""
    if run.profile_is_override:
        return run.model_profile
    if seat.model_profile_id is not None:
        return seat.model_profile
    epic_profile = (
        EpicAgentSettings.objects.filter(epic_id=card.epic_id, model_profile__isnull=False)
        .select_related("model_profile")
        .first()
    )
    if epic_profile is not None:
        return epic_profile.model_profile
    return run.model_profile
