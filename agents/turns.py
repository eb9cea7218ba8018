"""Executing a turn: claiming it, compiling its prompt, streaming the model's answer, and making the
answer's tool calls through the gate.

The answer and the record of each tool call are journaled on the turn as soon as they are decided,
so an attempt that resumes the turn (after a crash, a lost lease or a database outage) neither asks
the model again nor repeats the calls that took effect. What happens after a turn (review states,
workspace commits and merges, the Gitea hooks) is decided here too; the run is advanced afterwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django import db
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from agents.engine import block_card, dispatch_advance
from agents.gate import check_call
from agents.gitea import hooks as gitea_hooks
from agents.leases import LeaseKeeper, LeaseLost, turn_claim, worker_identity
from agents.models import ModelProfile, Role, Run, SeatNote, Team, Turn, TurnFailure, TurnStatus
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
from boards.models import Card, CardDependency
from orket_site.errors import OrketError

logger = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.5
# The outcome of a turn whose model server did not answer after every retry; its card waits and resumes.
MODEL_UNAVAILABLE = "The model server is unavailable"
LOOP_REPEATS = 3
ETHOS = (
    "Work in small, verifiable steps. Say plainly what you did and did not do. Never claim work is "
    "finished that you have not checked."
)


class RunCanceled(Exception):
    pass


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
    return provider_for(profile.provider, **profile.connection_options())


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
            block_card(run, Card.objects.get(pk=turn.card_id), "input", message)
    with transaction.atomic():
        dispatch_advance(run.pk)


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
        block_card(run, Card.objects.get(pk=card.pk), "resource", report)
        return
    except OrketError as error:
        _finish_turn(turn, owner, TurnStatus.FAILED, f"The turn could not start: {error.message}", started)
        block_card(run, Card.objects.get(pk=card.pk), "input", error.message)
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
            with transaction.atomic():
                message = "The same call was made three times in a row."
                _journal_decision(run, turn, owner, records, "tool.refused", "refused", rule="loop", message=message)
                _block_with_report(
                    run,
                    card,
                    "input",
                    call.name,
                    "loop",
                    message,
                    "Change the approach instead of repeating the call.",
                )
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
            fields = {"rule": decision.rule, "message": decision.message, "fix": decision.fix}
            _journal_decision(run, turn, owner, records, "tool.refused", "refused", **fields)
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
    try:
        with transaction.atomic() if name in BOARD_TOOLS else nullcontext():
            result = execute_tool(context, name, arguments)
            with transaction.atomic():
                _journal_decision(run, turn, owner, records, "tool.result", "executed", result=result)
                if name == "update_card_status":
                    event_append(run.pk, "card.status", card_id=turn.card_id, status=result["status"], seat=turn.seat)
    except ToolFailed as failed:
        kind, decision = ("tool.refused", "refused") if failed.governance else ("tool.error", "failed")
        _journal_decision(run, turn, owner, records, kind, decision, rule=failed.rule, message=failed.message)
        return int(failed.governance)
    return 0


def _journal_decision(
    run: Run, turn: Turn, owner: str, records: list[dict[str, Any]], kind: str, decision: str, **fields: Any
) -> None:
    """Settle the last call: its record gets the decision and fields, and the event announcing it
    commits together with the journal entry."""
    record = records[-1]
    record.update(decision=decision, **fields)
    with transaction.atomic():
        event_append(run.pk, kind, turn_id=turn.pk, card_id=turn.card_id, name=record["name"], **fields)
        _journal(turn, owner, records)


def _block_with_report(run: Run, card: Card, wait_reason: str, tool: str, rule: str, message: str, fix: str) -> None:
    report = f"Attempted {tool}; refused by rule {rule}: {message} What would fix it: {fix}"
    block_card(run, Card.objects.get(pk=card.pk), wait_reason, report)


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
