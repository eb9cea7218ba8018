"""Planning an epic with the architect: the planning turn, and the plan's life as a draft.

    plan_request  -> a plan `drafting`; the planning turn runs as a Celery task (plan_draft)
    plan_draft    -> the architect seat's turn: it may read the source repository (read_file,
                     list_directory, search_code) and answers with propose_plan(cards=[...]);
                     the plan becomes a `draft` with its problems named, or `failed` with the reason
    plan_save     -> a person's edits, validated like an import (unknown seats, cycles, references,
                     component folders with governance on; the complexity gate as a warning)
    plan_accept   -> the cards, all at once, through boards' import service; nothing before this
    plan_discard

The turn uses the agent loop's parts (the model provider with its retries, the tool-call parser,
the gate, the read tools, the conversation format); it is recorded on the plan (its prompt, and per
step the answer, the calls and the tokens), not as a Turn row, since a Turn belongs to a run's card.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents import dispatch, engine, selectors
from agents.conversation import StepRecord, step_messages
from agents.errors import AgentsError
from agents.gate import check_call
from agents.models import EpicAgentSettings, EpicPlan, ModelProfile, PlanStatus, Seat, Team
from agents.plan_format import (
    PLAN_TOOL,
    READ_TOOLS,
    MalformedPlan,
    document_from_proposal,
    gate_warnings,
    governance_problems,
    plan_tool_spec,
    planning_messages,
)
from agents.prompts import tool_specs
from agents.providers import (
    ChatRequest,
    Finished,
    ProviderError,
    RetryPolicy,
    TextDelta,
    ToolCallsDone,
    stream_with_retry,
)
from agents.run_events import scrub
from agents.steps import provider_of
from agents.toolcalls import parse_tool_calls
from agents.tools import ToolContext, ToolFailed, execute_tool
from agents.workspaces import ProjectWorkspace, project_workspace_root
from boards import services as board_services
from boards.access import require_project_role
from boards.actors import Actor
from boards.models import Card, Epic, ProjectRole
from boards.transfer import ImportProblems, parse_epic_for_team

logger = logging.getLogger(__name__)

MAX_PLAN_STEPS = 8
# A plan drafting this long without a step recorded lost its worker; asking again replaces it.
STALE_DRAFTING_SECONDS = 15 * 60
MAX_DOCUMENT_CHARS = 1_000_000
ARCHITECT_ROLE = "architect"


class PlanRefused(AgentsError):
    status = 409
    code = "plan_refused"


class PlanInvalid(AgentsError):
    """The plan has problems; `errors` lists each with its path (cards[2].depends_on)."""

    status = 400
    code = "plan_invalid"


# -- asking for a plan -----------------------------------------------------------------------------------


def architect_seat(team: Team) -> Seat:
    seats = list(team.seats.prefetch_related("roles").order_by("order", "name"))
    for seat in seats:
        if any(role.name == ARCHITECT_ROLE for role in seat.roles.all()):
            return seat
    if not seats:
        raise PlanRefused(f"Team {team.name!r} has no seats.", code="no_architect")
    return seats[0]


def _plan_profile(epic: Epic, seat: Seat) -> ModelProfile:
    """The architect seat's model, else the epic's, else the project default (which may ask Ollama)."""
    if seat.model_profile_id is not None:
        return cast(ModelProfile, seat.model_profile)
    chosen = EpicAgentSettings.objects.filter(epic_id=epic.pk, model_profile__isnull=False).first()
    if chosen is not None and chosen.model_profile is not None:
        return chosen.model_profile
    return engine.default_profile(epic.project_id)


def plan_request(*, epic: Epic, user: Any, replan: bool = False) -> EpicPlan:
    """Ask the epic's architect seat for a plan; the planning turn runs after commit as a task."""
    require_project_role(user, epic.project_id, ProjectRole.MEMBER)
    team = selectors.team_for(epic)
    seat = architect_seat(team)
    profile = _plan_profile(epic, seat)  # outside the transaction: it may probe the model server
    with transaction.atomic():
        locked = Epic.objects.select_for_update().get(pk=epic.pk)
        if locked.archived_at is not None:
            raise PlanRefused("The epic is archived; restore it before planning.", code="epic_archived")
        if not locked.description.strip():
            raise PlanRefused(
                "The epic has no description; describe what it should achieve, then ask for a plan.",
                code="description_required",
            )
        if Card.objects.filter(epic_id=locked.pk).exists() and not replan:
            raise PlanRefused(
                "The epic already has cards; choose re-plan to plan more cards next to them.", code="epic_has_cards"
            )
        EpicPlan.objects.filter(
            epic=locked,
            status=PlanStatus.DRAFTING,
            updated_at__lt=timezone.now() - timedelta(seconds=STALE_DRAFTING_SECONDS),
        ).update(status=PlanStatus.FAILED, error="The planning turn stopped without an answer.")
        try:
            with transaction.atomic():
                plan = EpicPlan.objects.create(
                    project_id=locked.project_id,
                    epic=locked,
                    replan=replan,
                    seat=seat.name,
                    model_profile=profile,
                    requested_by=user,
                )
        except IntegrityError as error:
            raise PlanRefused("The architect is already planning this epic.", code="plan_in_progress") from error
        plan_id = plan.pk
        dispatch.plan_draft_after_commit(plan_id=plan_id)
    return plan


# -- the planning turn -----------------------------------------------------------------------------------


def plan_draft(*, plan_id: int) -> EpicPlan | None:
    """Run the planning turn of a plan that is drafting; safe to call twice (the second does nothing)."""
    plan = EpicPlan.objects.select_related("epic", "project", "model_profile").filter(pk=plan_id).first()
    if plan is None or plan.status != PlanStatus.DRAFTING:
        return plan
    try:
        PlanningTurn(plan).run()
    except ProviderError as error:
        _fail(plan, f"The model could not be reached: {error}")
    except Exception as error:
        logger.exception("plan %s: the planning turn failed inside Orket", plan.pk)
        _fail(plan, f"Orket hit an internal error while planning: {type(error).__name__}: {error}")
    plan.refresh_from_db()
    return plan


def _fail(plan: EpicPlan, message: str) -> None:
    EpicPlan.objects.filter(pk=plan.pk, status=PlanStatus.DRAFTING).update(
        status=PlanStatus.FAILED, error=scrub(message[:20_000]), updated_at=timezone.now()
    )


class PlanningTurn:
    """The architect's planning turn: steps until it proposes a plan or runs out of steps."""

    def __init__(self, plan: EpicPlan) -> None:
        self.plan = plan
        self.epic = plan.epic
        self.team = selectors.team_for(self.epic)
        self.seats = list(self.team.seats.order_by("order", "name").values_list("name", flat=True))
        self.profile = plan.model_profile or engine.default_profile(plan.project_id)
        self.governance = self.epic.architecture_governance or plan.project.architecture_governance
        workspace = ProjectWorkspace(project_workspace_root(settings.DATA_DIR, plan.project_id))
        workspace.ensure()
        self.context = ToolContext(
            card=cast(Card, None),  # the read tools use only the workspace
            actor=Actor.for_seat(plan.seat, (ARCHITECT_ROLE,)),
            workspace=workspace.repo,
            seats=self.seats,
            verification=lambda card: {},
        )
        self.steps: list[dict[str, Any]] = []
        self.tokens_in = self.tokens_out = 0

    def run(self) -> None:
        epic = self.epic
        existing = list(Card.objects.filter(epic_id=epic.pk).order_by("rank", "id").values_list("title", flat=True))
        messages = planning_messages(
            epic_id=epic.pk,
            epic_name=epic.name,
            description=epic.description,
            seat=self.plan.seat,
            seats=self.seats,
            seat_roles=[
                (seat.name, role.name)
                for seat in self.team.seats.prefetch_related("roles").order_by("order", "name")
                for role in seat.roles.all()[:1]
            ],
            existing_cards=existing,
            governance=self.governance,
            threshold=self.plan.project.complexity_threshold,
        )
        EpicPlan.objects.filter(pk=self.plan.pk).update(messages=messages)
        history: list[dict[str, Any]] = []
        last_problem = ""
        for number in range(1, MAX_PLAN_STEPS + 1):
            answer, native, tokens_in, tokens_out, model_ms = self._ask([*messages, *history])
            parsed = parse_tool_calls(answer, native or None)
            records: list[dict[str, Any]] = []
            document: dict[str, Any] | None = None
            for index, call in enumerate(parsed.calls):
                record: dict[str, Any] = {"name": call.name, "arguments": scrub(call.arguments)}
                if call.id:
                    record["id"] = call.id
                records.append(record)
                if call.name == PLAN_TOOL:
                    try:
                        document = document_from_proposal(call.arguments, epic_name=epic.name)
                    except MalformedPlan as malformed:
                        last_problem = str(malformed)
                        record.update(
                            decision="failed", rule="malformed_plan", message=f"The plan was refused: {malformed}."
                        )
                        continue
                    record.update(decision="executed", result={"cards": len(document["cards"])})
                    break
                self._read(record, index)
            if not parsed.calls and parsed.problems:
                last_problem = "; ".join(parsed.problem_messages())
            self._record_step(number, answer, native, records, tokens_in, tokens_out, model_ms)
            if document is not None:
                self._drafted(document)
                return
            history += step_messages(
                StepRecord(number=number, answer=answer, native_calls=native, calls=records, reminded=not records)
            )
        reason = f" The last proposal could not be read: {last_problem}." if last_problem else ""
        _fail(self.plan, f"The architect made no usable plan in {MAX_PLAN_STEPS} steps.{reason}")

    def _ask(self, messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]], int, int, int]:
        profile = self.profile
        tools = [*tool_specs(READ_TOOLS), plan_tool_spec()] if profile.supports_native_tools else None
        request = ChatRequest(
            messages=messages,
            model=profile.model,
            base_url=profile.base_url,
            temperature=profile.temperature,
            seed=profile.seed,
            context_size=profile.context_size,
            max_tokens=profile.max_tokens,
            timeout=profile.timeout_seconds,
            tools=tools,
            api_key=profile.api_key(),
        )
        started = time.monotonic()
        text, native, tokens_in, tokens_out = "", [], 0, 0
        policy = RetryPolicy(attempts=profile.retry_attempts, base_delay=profile.retry_base_delay)
        for event in stream_with_retry(provider_of(profile), request, policy):
            if isinstance(event, TextDelta):
                text += event.text
            elif isinstance(event, ToolCallsDone):
                native = [asdict(call) for call in event.calls]
            elif isinstance(event, Finished):
                tokens_in, tokens_out = event.prompt_tokens or 0, event.completion_tokens or 0
        return text, native, tokens_in, tokens_out, int((time.monotonic() - started) * 1000)

    def _read(self, record: dict[str, Any], index: int) -> None:
        """A read tool through the gate; anything else is refused (planning changes nothing)."""
        name, arguments = record["name"], record["arguments"]
        decision = check_call(
            name, arguments, allowed_tools=READ_TOOLS, calls_in_answer=index, governance_on=self.governance
        )
        if not decision.allowed:
            record.update(decision="refused", rule=decision.rule, message=decision.message, fix=decision.fix)
            return
        try:
            record.update(decision="executed", result=execute_tool(self.context, name, dict(arguments)))
        except ToolFailed as failed:
            record.update(decision="failed", rule=failed.rule, message=failed.message)
        except TypeError as error:  # arguments the tool does not take
            record.update(decision="failed", rule="bad_arguments", message=str(error))

    def _record_step(
        self,
        number: int,
        answer: str,
        native: list[dict[str, Any]],
        records: list[dict[str, Any]],
        tokens_in: int,
        tokens_out: int,
        model_ms: int,
    ) -> None:
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.steps.append(
            scrub(
                {
                    "number": number,
                    "answer": answer[:50_000],
                    "native_calls": native,
                    "calls": [_short_record(record) for record in records],
                    "tokens_in": tokens_in,
                    "tokens_out": tokens_out,
                    "model_ms": model_ms,
                }
            )
        )
        EpicPlan.objects.filter(pk=self.plan.pk, status=PlanStatus.DRAFTING).update(
            steps=self.steps, tokens_in=self.tokens_in, tokens_out=self.tokens_out, updated_at=timezone.now()
        )

    def _drafted(self, document: dict[str, Any]) -> None:
        problems, warnings = validate_plan(self.plan, document)
        EpicPlan.objects.filter(pk=self.plan.pk, status=PlanStatus.DRAFTING).update(
            status=PlanStatus.DRAFT,
            proposed=document,
            document=document,
            problems=problems,
            warnings=warnings,
            drafted_at=timezone.now(),
            updated_at=timezone.now(),
        )


def _short_record(record: dict[str, Any]) -> dict[str, Any]:
    """A call as the plan keeps it: file contents are cut, the proposal is kept whole."""
    result = record.get("result")
    if isinstance(result, dict) and isinstance(result.get("content"), str) and len(result["content"]) > 2000:
        record = {**record, "result": {**result, "content": result["content"][:2000] + " [...]"}}
    return record


# -- the draft -------------------------------------------------------------------------------------------


def team_seats(epic: Epic) -> list[str]:
    return list(selectors.team_for(epic).seats.values_list("name", flat=True))


def validate_plan(plan: EpicPlan, document: Any) -> tuple[list[dict[str, str]], list[str]]:
    """The document's problems (as an import would name them, with the team's seats and governance)
    and warnings (the complexity gate)."""
    epic, project = plan.epic, plan.project
    governance = epic.architecture_governance or project.architecture_governance
    if isinstance(document, dict) and not document.get("name"):
        document = {**document, "name": epic.name}
    try:
        parse_epic_for_team(document, known_seats=team_seats(epic))
        problems: list[dict[str, str]] = []
    except ImportProblems as error:
        problems = [problem.as_dict() for problem in error.problems]
    if isinstance(document, dict):
        problems += governance_problems(document, governance=governance)
    cards = document.get("cards") if isinstance(document, dict) else None
    count = Card.objects.filter(epic_id=epic.pk).count() + (len(cards) if isinstance(cards, list) else 0)
    warnings = gate_warnings(card_count=count, threshold=project.complexity_threshold, governance=governance)
    return problems, warnings


def _document_size_checked(document: Any) -> None:
    if not isinstance(document, dict):
        raise PlanInvalid("The plan must be an object with a list of cards.", code="plan_invalid")
    if len(json.dumps(document)) > MAX_DOCUMENT_CHARS:
        raise PlanInvalid(f"The plan is larger than {MAX_DOCUMENT_CHARS:,} characters.", code="plan_too_large")


def _locked_draft(plan: EpicPlan, user: Any) -> EpicPlan:
    require_project_role(user, plan.project_id, ProjectRole.MEMBER)
    locked = EpicPlan.objects.select_for_update().select_related("epic", "project").get(pk=plan.pk)
    if locked.status != PlanStatus.DRAFT:
        raise PlanRefused(f"The plan is {locked.status}, not a draft; it can no longer change.", code="plan_not_draft")
    return locked


@transaction.atomic
def plan_save(*, plan: EpicPlan, document: Any, user: Any) -> EpicPlan:
    """Keep a person's edits of the draft, with the problems they leave."""
    locked = _locked_draft(plan, user)
    _document_size_checked(document)
    locked.document = document
    locked.problems, locked.warnings = validate_plan(locked, document)
    locked.save(update_fields=["document", "problems", "warnings", "updated_at"])
    return locked


@transaction.atomic
def plan_accept(*, plan: EpicPlan, user: Any, document: Any = None) -> EpicPlan:
    """Create the plan's cards (and dependencies) in one transaction through the import service; a plan
    with any problem creates nothing and says what is wrong."""
    locked = _locked_draft(plan, user)
    if document is not None:
        _document_size_checked(document)
        locked.document = document
    problems, warnings = validate_plan(locked, locked.document)
    if problems:
        count = len(problems)
        raise PlanInvalid(
            f"The plan was not accepted: {count} problem{'s' if count != 1 else ''}, the first at "
            f"{problems[0]['path']}: {problems[0]['message']}. No card was created.",
            errors=problems,
        )
    cards = board_services.epic_cards_import(
        epic=locked.epic,
        data=locked.document,
        actor=Actor.for_user(user),
        known_seats=team_seats(locked.epic),
        reason=f"planned by {locked.seat or 'the architect'} (plan {locked.pk})",
    )
    locked.status = PlanStatus.ACCEPTED
    locked.accepted_by = user
    locked.accepted_at = timezone.now()
    locked.cards_created = len(cards)
    locked.problems, locked.warnings = [], warnings
    locked.save()
    return locked


@transaction.atomic
def plan_discard(*, plan: EpicPlan, user: Any) -> EpicPlan:
    require_project_role(user, plan.project_id, ProjectRole.MEMBER)
    locked = EpicPlan.objects.select_for_update().get(pk=plan.pk)
    if locked.status in (PlanStatus.ACCEPTED, PlanStatus.DISCARDED):
        raise PlanRefused(f"The plan is already {locked.status}.", code="plan_not_draft")
    locked.status = PlanStatus.DISCARDED
    locked.save(update_fields=["status", "updated_at"])
    return locked
