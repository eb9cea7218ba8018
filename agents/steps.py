"""The steps of a turn: the model answers on the conversation so far, its tool calls go through the
gate and run, and what they did is appended to the conversation before the next step.

Each step is a `TurnStep` row, written as it completes: the answer (with its tokens) as soon as it
is in, each call's record as soon as it is decided or has taken effect. An attempt that resumes a
turn cut off mid-way rebuilds the conversation from those rows, reuses a recorded answer instead of
asking the model again, and skips the calls already recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from agents import phase_timer
from agents.approvals import call_label, tool_approval_request
from agents.command_output import COMMAND_TOOLS, command_output_stream
from agents.conversation import StepRecord, step_messages
from agents.engine import block_card
from agents.gate import check_call
from agents.leases import LeaseKeeper, LeaseLost
from agents.models import (
    ApprovalStatus,
    ModelProfile,
    Role,
    Run,
    ToolApproval,
    Turn,
    TurnStatus,
    TurnStep,
    approval_tools_for,
)
from agents.notes import seat_note_add
from agents.prompt_budget import (
    DEFAULT_CHARS_PER_TOKEN,
    PromptTooLarge,
    budget_for,
    chars_per_token,
    counter,
    fit_conversation,
    safety_margin,
    tools_tokens,
)
from agents.prompts import compile_prompt
from agents.providers import (
    ChatRequest,
    Finished,
    ReasoningDelta,
    Retrying,
    RetryPolicy,
    TextDelta,
    ToolCall,
    ToolCallsDone,
    provider_for,
    stream_with_retry,
)
from agents.providers.base import SchemaUnsupported
from agents.providers.tokenize import count_tokens
from agents.run_events import TextCoalescer, event_append, scrub
from agents.scripted_team import scripted_reply
from agents.step_schema import step_schema
from agents.toolcalls import ParsedCall, parse_tool_calls
from agents.tools import ToolContext, ToolFailed, execute_tool
from agents.turn_prompt import prompt_context
from agents.workspaces import ProjectWorkspace
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card

logger = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.5
LOOP_REPEATS = 3
SCHEMA_UNSUPPORTED = "unsupported"
MIN_ANSWER_TOKENS = 256
# Profiles whose tokenizer this process asked already (a server without one is not asked every turn).
_MEASURED: set[int] = set()
# Tools whose effect is database rows: the effect and its record commit together, so it happens once.
BOARD_TOOLS = frozenset({"add_comment", "update_card_status", "create_card", "add_note"})
FILE_TOOLS = frozenset({"write_file", "edit_file", "delete_file"})
# The decision recorded for a call that waits for a person's approval (agents.approvals).
AWAITING_APPROVAL = "awaiting_approval"


class RunCanceled(Exception):
    pass


@dataclass
class ModelAnswer:
    text: str = ""
    reasoning: str = ""
    native_calls: list[ToolCall] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    first_token_ms: int | None = None
    model_ms: int = 0
    schema_shape: str = ""


@dataclass(frozen=True)
class TurnEnding:
    """Why the loop stopped: `kind` is handoff, finished, no_call, limit, budget, blocked or approval
    (a call waits for a person; the step stays unfinished and the turn resumes there)."""

    kind: str
    outcome: str


class Watch:
    """Notices, between streamed chunks and between steps, that the run was canceled or the lease lost."""

    def __init__(self, turn: Turn, keeper: LeaseKeeper) -> None:
        self.turn, self.keeper = turn, keeper
        self._checked = 0.0

    def check(self, *, now: bool = False) -> None:
        if self.keeper.lost.is_set():
            raise LeaseLost
        moment = time.monotonic()
        if not now and moment - self._checked < CANCEL_CHECK_SECONDS:
            return
        self._checked = moment
        if Run.objects.filter(pk=self.turn.run_id, cancel_requested=True).exists():
            raise RunCanceled


def provider_of(profile: ModelProfile) -> Any:
    if profile.provider == ModelProfile.Provider.SCRIPTED:
        speed = profile.tokens_per_second or float(os.environ.get("ORKET_SCRIPTED_TOKENS_PER_SECOND", "0")) or None
        return provider_for("scripted", replies=scripted_reply, tokens_per_second=speed)
    return provider_for(profile.provider, **profile.connection_options())


def call_signature(name: str, arguments: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([name, arguments], sort_keys=True, default=str).encode()).hexdigest()


def _step_record(step: TurnStep) -> StepRecord:
    return StepRecord(
        number=step.number,
        answer=step.raw_answer,
        native_calls=list(step.native_calls),
        calls=list(step.calls),
        reminded=step.outcome == "no_call",
    )


class TurnLoop:
    """One attempt at a claimed turn: steps until the seat hands the card on or a limit is reached."""

    def __init__(
        self,
        *,
        run: Run,
        turn: Turn,
        owner: str,
        card: Card,
        role: Role,
        actor: Actor,
        profile: ModelProfile,
        workspace: ProjectWorkspace,
        worktree: Path,
        keeper: LeaseKeeper,
        started: float,
    ) -> None:
        self.run, self.turn, self.owner, self.card, self.role = run, turn, owner, card, role
        self.actor, self.profile, self.workspace, self.worktree = actor, profile, workspace, worktree
        self.started = started
        self.watch = Watch(turn, keeper)
        self.reviewing = turn.purpose == "review"
        self.governance = card.epic.architecture_governance or card.project.architecture_governance
        self.steps: list[TurnStep] = list(TurnStep.objects.filter(turn_id=turn.pk).order_by("number"))
        self.history: list[dict[str, Any]] = []
        self.fixed: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = []
        self.signatures = self._earlier_signatures()
        self.approval_tools = approval_tools_for(card.project_id)
        # Earlier turns of the card in this run are finished: their tokens do not change during this one.
        self.card_tokens_before = (
            Turn.objects.filter(run_id=turn.run_id, card_id=turn.card_id, number__lt=turn.number).aggregate(
                total=Sum(F("tokens_in") + F("tokens_out"))
            )["total"]
            or 0
        )
        self.last_step_refused = self._previous_turn_ended_refused()
        self.reminders = 0
        self.answer_tokens = profile.max_tokens
        self.files: set[str] = set()
        self.commit_sha = ""
        self.context = ToolContext(
            card=card,
            actor=actor,
            workspace=worktree,
            seats=list(run.team.seats.values_list("name", flat=True)),
            verification=_verification,
            diff=lambda path: workspace.card_diff(card.pk, path=path),
        )

    def _event(self, kind: str, **data: Any) -> None:
        """A run event of this turn's card."""
        event_append(self.run.pk, kind, turn_id=self.turn.pk, card_id=self.card.pk, **data)

    # -- the loop --------------------------------------------------------------------------------

    def run_steps(self) -> TurnEnding:
        self._prepare_prompt()
        done = [step for step in self.steps if step.finished_at is not None]
        for step in done:
            self._replay(step)
        if self.steps:
            self._event(
                "turn.resumed",
                steps_done=len(done),
                reason="Earlier steps of this turn are on record; their answers and calls are not repeated.",
            )
        number = len(done) + 1
        while True:
            with phase_timer.sample("step"):
                ending = self._step(number)
            if ending is not None:
                return ending
            number += 1

    def _prepare_prompt(self) -> None:
        with phase_timer.phase("prompt"):
            self._compile_prompt()

    def _compile_prompt(self) -> None:
        context = prompt_context(
            card=self.card,
            team=self.run.team,
            seat=self.turn.seat,
            role=self.role,
            profile=self.profile,
            purpose=self.turn.purpose,
            diff=self.workspace.card_diff(self.card.pk) if self.reviewing else "",
        )
        compiled = compile_prompt(context)
        self.constrained = context.constrained
        self.tools = compiled.tools
        if self.turn.messages:
            self.fixed = list(self.turn.messages)  # the same first prompt as the earlier attempt
        else:
            self.fixed = compiled.messages
            Turn.objects.filter(pk=self.turn.pk).update(messages=self.fixed)

    def _replay(self, step: TurnStep) -> None:
        """Take a finished step of an earlier attempt into this one's state and conversation."""
        self.history += step_messages(_step_record(step), constrained=self.constrained)
        self.signatures += [call.get("signature", "") for call in step.calls]
        self.last_step_refused = _refused(step.calls)
        self.reminders += step.outcome == "no_call"
        for call in step.calls:
            if call.get("decision") == "executed" and call.get("name") in FILE_TOOLS:
                self.files.add(str(call["arguments"].get("path", "")))

    def _step(self, number: int) -> TurnEnding | None:
        self.watch.check(now=True)
        step = next((s for s in self.steps if s.number == number), None)
        if step is None or step.answer_recorded_at is None:
            limit = self._limit_reached(number)
            if limit is not None:
                return limit
            step = self._ask_model(number, step)
        engine_started = time.monotonic()
        with phase_timer.phase("parse"):
            parsed = parse_tool_calls(step.raw_answer, [ToolCall(**call) for call in step.native_calls] or None)
        if step.finished_at is None:
            for problem in parsed.problems:
                self._event("parse.problem", message=str(problem))
        records, blocked = self._act(step, parsed.calls)
        step_files = {
            str(r["arguments"].get("path", ""))
            for r in records
            if r.get("decision") == "executed" and r["name"] in FILE_TOOLS
        }
        self._commit(number, step_files)
        if blocked is not None and blocked.kind == "approval":
            return blocked  # the step is not finished: the resumed turn takes it up at the waiting call
        ending = blocked or self._ending_after(records, parsed.calls)
        outcome = ending.kind if ending else ("calls" if parsed.calls else "no_call")
        self._finish_step(step, records, outcome, engine_started)
        with phase_timer.phase("prompt"):
            self.history += step_messages(_step_record(step), constrained=self.constrained)
        self.last_step_refused = _refused(records)
        return ending

    # -- limits ----------------------------------------------------------------------------------

    def _limit_reached(self, number: int) -> TurnEnding | None:
        profile, run = self.profile, Run.objects.get(pk=self.run.pk)
        if number > profile.max_steps:
            return TurnEnding("limit", f"Reached the limit of {profile.max_steps} steps in one turn.")
        if time.monotonic() - self.started > profile.turn_seconds:
            return TurnEnding("limit", f"Reached the turn's time limit of {profile.turn_seconds} s.")
        if run.tokens_in + run.tokens_out >= run.token_budget:
            return TurnEnding("budget", f"The run's token budget of {run.token_budget} is spent.")
        used = self.card_tokens_before + sum(step.tokens_in + step.tokens_out for step in self.steps)
        if used >= run.card_token_budget:
            report = f"The card used its budget of {run.card_token_budget} tokens in this run ({used} used)."
            block_card(run, Card.objects.get(pk=self.card.pk), "input", report)
            return TurnEnding("blocked", report)
        return None

    # -- asking the model ------------------------------------------------------------------------

    def _ask_model(self, number: int, step: TurnStep | None) -> TurnStep:
        profile = self.profile
        count = counter(self._chars_per_token())
        reserved = tools_tokens(self.tools, count) if self.tools and not self.constrained else 0
        # The answer keeps at least this much room; what the prompt leaves over goes to it too.
        answer_room = min(profile.max_tokens, max(MIN_ANSWER_TOKENS, profile.context_size // 4))
        try:
            with phase_timer.phase("prompt"):
                fitted = fit_conversation(
                    self.fixed,
                    self.history,
                    budget_tokens=budget_for(profile.context_size, answer_room),
                    count=count,
                    reserved_tokens=reserved,
                    context_size=profile.context_size,
                    max_tokens=answer_room,
                )
        except PromptTooLarge as error:
            raise error.with_profile(profile.name) from error
        self.answer_tokens = max(
            answer_room,
            min(profile.max_tokens, profile.context_size - fitted.tokens - safety_margin(profile.context_size)),
        )
        self._event(
            "step.started",
            step=number,
            request_tokens=fitted.tokens,
            shortened=fitted.shortened,
            omitted_steps=fitted.omitted_steps,
        )
        with phase_timer.phase("model"):
            answer = self._call_model(fitted.messages)
        return self._record_answer(number, step, answer, fitted.tokens, len(fitted.messages), fitted.shortened)

    def _chars_per_token(self) -> float:
        """The profile's measured ratio; measured once with the server's tokenizer when it has one."""
        profile = self.profile
        if profile.chars_per_token is None and profile.pk not in _MEASURED and profile.provider == "openai":
            _MEASURED.add(profile.pk)
            sample = "\n".join(str(message.get("content") or "") for message in self.fixed)
            counted = count_tokens(
                "openai",
                profile.base_url,
                sample,
                model=profile.model,
                api_key=profile.api_key(),
                client_options=profile.connection_options(),
            )
            if counted:
                profile.chars_per_token = chars_per_token(sample, counted)
                ModelProfile.objects.filter(pk=profile.pk).update(chars_per_token=profile.chars_per_token)
        return profile.chars_per_token or DEFAULT_CHARS_PER_TOKEN

    def _request(self, messages: list[dict[str, Any]]) -> ChatRequest:
        profile = self.profile
        schema = None
        if self.constrained and profile.json_schema_shape != SCHEMA_UNSUPPORTED:
            schema = step_schema(list(self.role.allowed_tools), max_tokens=self.answer_tokens)
        return ChatRequest(
            messages=messages,
            model=profile.model,
            base_url=profile.base_url,
            temperature=profile.temperature,
            seed=profile.seed,
            context_size=profile.context_size,
            max_tokens=self.answer_tokens,
            timeout=profile.timeout_seconds,
            tools=self.tools or None if profile.supports_native_tools and schema is None else None,
            response_schema=schema,
            schema_shape=profile.json_schema_shape or None if schema is not None else None,
            api_key=profile.api_key(),
        )

    def _call_model(self, messages: list[dict[str, Any]]) -> ModelAnswer:
        """Stream one answer. A server that refuses the remembered schema shape is asked to find its
        shape again; one that refuses every shape is marked unsupported and answers unconstrained."""
        request = self._request(messages)
        try:
            answer = self._stream(request)
        except SchemaUnsupported as refused:
            if request.schema_shape:
                self._remember_shape("", f"The server refused the remembered shape: {refused}")
            else:
                self._remember_shape(SCHEMA_UNSUPPORTED, str(refused))
                self.constrained = False
            return self._call_model(messages)
        if answer.schema_shape and answer.schema_shape != self.profile.json_schema_shape:
            self._remember_shape(answer.schema_shape, "")
        return answer

    def _remember_shape(self, shape: str, detail: str) -> None:
        ModelProfile.objects.filter(pk=self.profile.pk).update(json_schema_shape=shape)
        self.profile.json_schema_shape = shape
        self._event(
            "model.schema_shape",
            profile=self.profile.name,
            shape=shape,
            detail=detail,
        )

    def _stream(self, request: ChatRequest) -> ModelAnswer:
        run, turn, profile = self.run, self.turn, self.profile
        text = TextCoalescer(run.pk, turn.pk, turn.card_id)
        thinking = TextCoalescer(run.pk, turn.pk, turn.card_id, kind="reasoning")
        started = time.monotonic()
        answer = ModelAnswer()
        policy = RetryPolicy(attempts=profile.retry_attempts, base_delay=profile.retry_base_delay)
        for event in stream_with_retry(provider_of(profile), request, policy):
            self.watch.check()
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
                answer.schema_shape = str(event.metadata.get("schema_shape") or "")
            elif isinstance(event, Retrying):
                text.flush()
                self._event(
                    "model.retry",
                    attempt=event.attempt,
                    error=str(event.error),
                    delay_seconds=round(event.delay, 2),
                )
                if event.discard_output:
                    answer = ModelAnswer(first_token_ms=answer.first_token_ms)
        text.flush()
        thinking.flush()
        answer.model_ms = int((time.monotonic() - started) * 1000)
        return answer

    def _record_answer(
        self,
        number: int,
        step: TurnStep | None,
        answer: ModelAnswer,
        request_tokens: int,
        messages: int,
        shortened: int,
    ) -> TurnStep:
        """Store the whole answer and count its tokens, once and together, while this worker holds the turn."""
        fields = {
            "raw_answer": scrub(answer.text),
            "reasoning": scrub(answer.reasoning),
            "native_calls": scrub([asdict(call) for call in answer.native_calls]),
            "tokens_in": answer.tokens_in,
            "tokens_out": answer.tokens_out,
            "time_to_first_token_ms": answer.first_token_ms,
            "model_ms": answer.model_ms,
            "schema_shape": answer.schema_shape if self.constrained else "",
            "request_tokens": request_tokens,
            "request_messages": messages,
            "shortened": shortened,
            "answer_recorded_at": timezone.now(),
            "calls": [],
        }
        with transaction.atomic():
            if not self._holds_turn(lock=True):
                raise LeaseLost
            if step is None:
                step = TurnStep.objects.create(turn_id=self.turn.pk, number=number, **fields)
                self.steps.append(step)
            else:
                TurnStep.objects.filter(pk=step.pk).update(**fields)
                for name, value in fields.items():
                    setattr(step, name, value)
            Run.objects.filter(pk=self.run.pk).update(
                tokens_in=F("tokens_in") + answer.tokens_in, tokens_out=F("tokens_out") + answer.tokens_out
            )
        return step

    def _holds_turn(self, *, lock: bool = False) -> bool:
        rows = Turn.objects.filter(pk=self.turn.pk, status=TurnStatus.RUNNING, lease_owner=self.owner)
        if lock:
            rows = rows.select_for_update()
        return rows.exists()

    # -- acting on the answer --------------------------------------------------------------------

    def _act(self, step: TurnStep, calls: list[ParsedCall]) -> tuple[list[dict[str, Any]], TurnEnding | None]:
        """Make the step's calls through the gate, skipping those an earlier attempt recorded."""
        done = list(step.calls)
        records: list[dict[str, Any]] = []
        for index, call in enumerate(calls):
            if index < len(done):
                ending = self._take_up_recorded(step, records, done[index], index)
            else:
                ending = self._call(step, records, call, index)
            if ending is not None:
                return records, ending
        return records, self._ladder(step, records)

    def _take_up_recorded(
        self, step: TurnStep, records: list[dict[str, Any]], record: dict[str, Any], index: int
    ) -> TurnEnding | None:
        """A call an earlier attempt recorded is never made again; one that waited for a person is
        decided now, and one the loop rule refused blocks again."""
        records.append(record)
        self.signatures.append(record.get("signature", ""))
        if record.get("decision") == AWAITING_APPROVAL:
            return self._decided(step, records, index)
        if record.get("rule") == "loop":
            return TurnEnding("blocked", "Blocked: the same tool call was repeated three times.")
        return None

    def _call(self, step: TurnStep, records: list[dict[str, Any]], call: ParsedCall, index: int) -> TurnEnding | None:
        """A new call: recorded and announced, then refused (the loop rule, the gate), held for a
        person's approval, or made."""
        arguments = self._record_call(step, records, call)
        recent = self.signatures[-LOOP_REPEATS:]
        if len(recent) == LOOP_REPEATS and len(set(recent)) == 1:
            return self._block_loop(step, records, call.name)
        with phase_timer.phase("gate"):
            decision = check_call(
                call.name,
                arguments,
                allowed_tools=[*self.role.allowed_tools],
                calls_in_answer=index,
                governance_on=self.governance,
            )
        if not decision.allowed:
            fields = {"rule": decision.rule, "message": decision.message, "fix": decision.fix}
            self._settle(step, records, "tool.refused", "refused", **fields)
            return None
        if call.name in self.approval_tools:
            return self._ask_approval(step, records, index)
        self._execute(step, call.name, arguments, records)
        return None

    def _record_call(self, step: TurnStep, records: list[dict[str, Any]], call: ParsedCall) -> dict[str, Any]:
        """Add the call to the step's records and announce it; its (scrubbed) arguments."""
        arguments = scrub(call.arguments)
        signature = call_signature(call.name, arguments)
        record: dict[str, Any] = {"name": call.name, "arguments": arguments, "signature": signature}
        if call.id:
            record["id"] = call.id
        records.append(record)
        self.signatures.append(signature)
        self._event(
            "tool.call",
            step=step.number,
            name=call.name,
            arguments=arguments,
        )
        return arguments

    def _ask_approval(self, step: TurnStep, records: list[dict[str, Any]], index: int) -> TurnEnding:
        """Stop before the call: a person approves or rejects it, and the turn resumes here."""
        record = records[-1]
        with transaction.atomic():
            approval = tool_approval_request(
                turn=self.turn,
                step_number=step.number,
                call_index=index,
                tool=record["name"],
                arguments=record["arguments"],
            )
            self._settle(
                step,
                records,
                "approval.requested",
                AWAITING_APPROVAL,
                approval=approval.pk,
                call=index + 1,
                arguments=record["arguments"],
            )
        label = call_label(record["name"], record["arguments"])
        where = f"step {step.number}, call {index + 1}"
        return TurnEnding("approval", f"Waiting for a person to approve {label} ({where}).")

    def _decided(self, step: TurnStep, records: list[dict[str, Any]], index: int) -> TurnEnding | None:
        """A call that waited for a person: run it if approved, tell the model if rejected."""
        record = records[-1]
        approval = (
            ToolApproval.objects.filter(turn_id=self.turn.pk, step_number=step.number, call_index=index)
            .select_related("decided_by")
            .first()
        )
        status = approval.status if approval is not None else ApprovalStatus.PENDING
        if status in (ApprovalStatus.PENDING, ApprovalStatus.CANCELED):
            return TurnEnding("approval", f"Still waiting for a person to approve {record['name']}.")
        person = approval.decided_by.get_username() if approval.decided_by else "a person"
        if status == ApprovalStatus.APPROVED:
            record["approved_by"] = person
            self._execute(step, record["name"], record["arguments"], records)
        else:
            message = f"rejected by {person}: {approval.reason}"
            self._settle(step, records, "tool.rejected", "rejected", rejected_by=person, message=message)
        return None

    def _block_loop(self, step: TurnStep, records: list[dict[str, Any]], name: str) -> TurnEnding:
        message = "The same call was made three times in a row."
        with transaction.atomic():
            self._settle(step, records, "tool.refused", "refused", rule="loop", message=message)
            self._block_with_report(
                "input", name, "loop", message, "Change the approach instead of repeating the call."
            )
        return TurnEnding("blocked", "Blocked: the same tool call was repeated three times.")

    def _ladder(self, step: TurnStep, records: list[dict[str, Any]]) -> TurnEnding | None:
        """A refusal is fed back once (as the step's observation); a second step in a row with one
        blocks the card with a report. A done refused for want of a verification makes the card
        wait for a person."""
        refused = [r for r in records if r.get("decision") == "refused"]
        if not refused:
            return None
        unverified = next((r for r in refused if r.get("rule") == "verification_required"), None)
        if unverified is not None:
            report = f"The card waits for review by a person: {unverified.get('message', '')}"
            block_card(self.run, Card.objects.get(pk=self.card.pk), "review", report)
            return TurnEnding("blocked", report)
        if not self.last_step_refused:
            return None
        first = refused[0]
        self._block_with_report(
            "input",
            first["name"],
            first.get("rule", ""),
            first.get("message", ""),
            first.get("fix") or "Follow the rule named in the refusal.",
        )
        return TurnEnding("blocked", "Blocked: governance refused calls in two steps in a row.")

    def _block_with_report(self, wait_reason: str, tool: str, rule: str, message: str, fix: str) -> None:
        report = f"Attempted {tool}; refused by rule {rule}: {message} What would fix it: {fix}"
        block_card(self.run, Card.objects.get(pk=self.card.pk), wait_reason, report)

    def _execute(self, step: TurnStep, name: str, arguments: dict[str, Any], records: list[dict[str, Any]]) -> None:
        """Execute one approved call and journal its record.

        A board tool's rows, its events and its record commit in one transaction, so a crash either
        leaves no trace of the call (it is made again) or the record too (it is not). File tools are
        idempotent and verification only reads, so those run outside the transaction."""
        if name in COMMAND_TOOLS:
            self._execute_command(step, name, arguments, records)
            return
        try:
            with transaction.atomic() if name in BOARD_TOOLS else nullcontext():
                with phase_timer.phase(f"tool:{name}"):
                    result = execute_tool(self.context, name, arguments)
                with transaction.atomic():
                    self._settle(step, records, "tool.result", "executed", result=result)
                    if name == "update_card_status":
                        event_append(
                            self.run.pk,
                            "card.status",
                            card_id=self.card.pk,
                            status=result["status"],
                            seat=self.turn.seat,
                        )
        except ToolFailed as failed:
            kind, decision = ("tool.refused", "refused") if failed.governance else ("tool.error", "failed")
            self._settle(step, records, kind, decision, rule=failed.rule, message=failed.message)

    def _execute_command(
        self, step: TurnStep, name: str, arguments: dict[str, Any], records: list[dict[str, Any]]
    ) -> None:
        """A command's output streams live to a log stream that the run view follows; its result (the
        cut output the model sees) and the stream's id go on the record."""
        refs = {"run": self.run.pk, "turn": self.turn.pk, "card": self.card.pk, "step": step.number}
        with command_output_stream(project_id=self.card.project_id, tool=name, arguments=arguments, refs=refs) as (
            stream_id,
            writer,
        ):
            self._event("command.started", step=step.number, name=name, log_stream=stream_id)
            self.context.on_output = writer
            try:
                with phase_timer.phase(f"tool:{name}"):
                    result = execute_tool(self.context, name, arguments)
            except ToolFailed as failed:
                kind, decision = ("tool.refused", "refused") if failed.governance else ("tool.error", "failed")
                self._settle(
                    step, records, kind, decision, rule=failed.rule, message=failed.message, log_stream=stream_id
                )
                return
            finally:
                self.context.on_output = None
        self._settle(step, records, "tool.result", "executed", result=result, log_stream=stream_id)

    def _settle(self, step: TurnStep, records: list[dict[str, Any]], kind: str, decision: str, **fields: Any) -> None:
        """Settle the last call: its record gets the decision and fields, and the event announcing it
        commits together with the journal entry."""
        record = records[-1]
        record.update(decision=decision, **fields)
        with transaction.atomic():
            self._event(kind, step=step.number, name=record["name"], **fields)
            stored = TurnStep.objects.filter(
                pk=step.pk, turn__status=TurnStatus.RUNNING, turn__lease_owner=self.owner
            ).update(calls=scrub(records))
            if not stored:
                raise LeaseLost
        step.calls = list(records)

    # -- after the calls -------------------------------------------------------------------------

    def _commit(self, number: int, files: set[str]) -> None:
        """Commit what the step changed, so git_diff and the next steps see it, and a verification
        result no longer speaks for code that changed since."""
        if not files:
            return
        self.files |= files
        sha = self.workspace.commit_card(
            self.card.pk,
            seat=self.turn.seat,
            message=f"card {self.card.pk}: {self.turn.role} turn {self.turn.number} step {number}",
        )
        if not sha:
            return
        self.commit_sha = sha
        self._event("workspace.commit", sha=sha, step=number, files=sorted(files))
        card = Card.objects.get(pk=self.card.pk)
        if card.last_verification:
            board_services.card_record_verification(
                card=card,
                result="",
                actor=Actor.orket("engine"),
                reason=f"The card's code changed in commit {sha[:12]}; its last verification no longer applies.",
            )

    def _ending_after(self, records: list[dict[str, Any]], calls: list[ParsedCall]) -> TurnEnding | None:
        if self.context.status_changed_to is not None:
            return TurnEnding("handoff", f"Handed the card on: it is now {self.context.status_changed_to}.")
        finished = next(
            (r for r in records if r.get("name") == "finish_turn" and r.get("decision") == "executed"), None
        )
        if finished is not None:
            result = finished.get("result") or {}
            left = f" Left to do: {result['remaining']}" if result.get("remaining") else ""
            return TurnEnding("finished", f"{result.get('summary', '')}{left}".strip())
        if calls:
            return None
        self.reminders += 1
        if self.reminders >= 2:
            return TurnEnding("no_call", "The model made no tool calls, even after a reminder of the protocol.")
        return None

    def _finish_step(self, step: TurnStep, records: list[dict[str, Any]], outcome: str, engine_started: float) -> None:
        engine_ms, finished_at = int((time.monotonic() - engine_started) * 1000), timezone.now()
        TurnStep.objects.filter(pk=step.pk).update(outcome=outcome, finished_at=finished_at, engine_ms=engine_ms)
        step.outcome, step.finished_at, step.engine_ms, step.calls = outcome, finished_at, engine_ms, records
        self._event(
            "step.finished",
            step=step.number,
            outcome=outcome,
            calls=len(records),
            refused=sum(r.get("decision") == "refused" for r in records),
            tokens_in=step.tokens_in,
            tokens_out=step.tokens_out,
            model_ms=step.model_ms,
            engine_ms=engine_ms,
        )

    # -- what the turn leaves behind -------------------------------------------------------------

    def leave_refusal_note(self) -> None:
        """A turn that ended on refused calls tells the seat's next turn what was refused."""
        last = self.steps[-1] if self.steps else None
        refused = [r for r in (last.calls if last else []) if r.get("decision") == "refused"]
        if not refused:
            return
        seat_note_add(
            card_id=self.card.pk,
            from_seat="orket",
            to_seat=self.turn.seat,
            body="Refused: " + "; ".join(f"{r['name']}: {r.get('message', '')}" for r in refused),
        )

    def totals(self) -> dict[str, Any]:
        """The turn's fields summed over its steps."""
        steps = sorted(self.steps, key=lambda s: s.number)
        answers = [s.raw_answer for s in steps]
        calls = [{**record, "step": s.number} for s in steps for record in s.calls]
        return {
            "raw_answer": answers[0]
            if len(answers) == 1
            else "\n\n".join(f"[step {s.number}]\n{s.raw_answer}" for s in steps),
            "reasoning": "\n\n".join(s.reasoning for s in steps if s.reasoning),
            "native_calls": [call for s in steps for call in s.native_calls],
            "tool_calls": calls,
            "tokens_in": sum(s.tokens_in for s in steps),
            "tokens_out": sum(s.tokens_out for s in steps),
            "time_to_first_token_ms": steps[0].time_to_first_token_ms if steps else None,
            "answer_recorded_at": steps[-1].answer_recorded_at if steps else None,
            "commit_sha": self.commit_sha,
        }

    # -- history -----------------------------------------------------------------------------------

    def _earlier_signatures(self) -> list[str]:
        signatures: list[str] = []
        for calls in (
            Turn.objects.filter(card_id=self.turn.card_id, run_id=self.turn.run_id, number__lt=self.turn.number)
            .order_by("number")
            .values_list("tool_calls", flat=True)
        ):
            signatures += [call.get("signature", "") for call in calls or []]
        return signatures

    def _previous_turn_ended_refused(self) -> bool:
        previous = Turn.objects.filter(
            card_id=self.turn.card_id, run_id=self.turn.run_id, number=self.turn.number - 1
        ).first()
        if previous is None or not previous.tool_calls:
            return False
        last_step = max(call.get("step", 1) for call in previous.tool_calls)
        return _refused([call for call in previous.tool_calls if call.get("step", 1) == last_step])


def _refused(records: list[dict[str, Any]]) -> bool:
    return any(record.get("decision") == "refused" for record in records)


def _verification(card: Card) -> dict[str, Any]:
    """The run_verification tool: the card's fixture, run now in isolation (bounded by its timeout)."""
    from sandboxes.verification import verification_for_agent

    return verification_for_agent(card=card, requested_by="agent")
