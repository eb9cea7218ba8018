"""The card state machine: transition tables and the rules, as plain data and functions.

No Django imports: the service `boards.services.card_transition` gathers the facts from the
database and asks `check_transition`; everything that decides lives here and is tested without a
database.

Rules, checked in this order (the first that fails is the answer):

1. `illegal_transition`: the edge must exist in the table for the item type.
2. `wait_reason_required` / `wait_reason_invalid` / `wait_reason_unexpected`: moving to `blocked`
   or `waiting_for_developer` needs one of the known wait reasons; other targets take none.
3. Moving an issue to `done`:
   `role_forbidden` unless the actor holds a finalizing role;
   `same_seat` when the actor is the seat that did the last work on the card;
   `verification_failed` while the card's latest verification failed.
4. `cancel_forbidden`: canceling needs a project maintainer or a project-manager role.
5. `children_unfinished`: an epic (rock) may move to `done` only when every card (epic) in it is
   done or canceled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ISSUE = "issue"
EPIC = "epic"
ROCK = "rock"
ITEM_TYPES = (ISSUE, EPIC, ROCK)

READY = "ready"
IN_PROGRESS = "in_progress"
BLOCKED = "blocked"
WAITING_FOR_DEVELOPER = "waiting_for_developer"
READY_FOR_TESTING = "ready_for_testing"
CODE_REVIEW = "code_review"
DONE = "done"
CANCELED = "canceled"

STATUSES = (READY, IN_PROGRESS, BLOCKED, WAITING_FOR_DEVELOPER, READY_FOR_TESTING, CODE_REVIEW, DONE, CANCELED)
FINAL_STATUSES = frozenset({DONE, CANCELED})
WAITING_STATUSES = frozenset({BLOCKED, WAITING_FOR_DEVELOPER})
# Statuses in which the acting seat is doing the work on a card (recorded as last_worked_by_seat).
WORK_STATUSES = frozenset({IN_PROGRESS, READY_FOR_TESTING, CODE_REVIEW})

WAIT_REASONS: Mapping[str, str] = {
    "resource": "waiting for a resource such as an LLM slot or memory",
    "dependency": "waiting for another card",
    "review": "a person must approve",
    "input": "a person must answer",
}

VERIFICATION_PASSED = "passed"
VERIFICATION_FAILED = "failed"
VERIFICATION_RESULTS = ("", VERIFICATION_PASSED, VERIFICATION_FAILED)

PROJECT_MANAGER_ROLES = frozenset({"project_manager"})

TRANSITIONS: Mapping[str, Mapping[str, frozenset[str]]] = {
    ISSUE: {
        READY: frozenset({IN_PROGRESS, CANCELED}),
        IN_PROGRESS: frozenset({BLOCKED, WAITING_FOR_DEVELOPER, READY_FOR_TESTING, CODE_REVIEW, CANCELED}),
        # Back to ready: a person answered the question the card waited on (boards.services.card_answer).
        BLOCKED: frozenset({IN_PROGRESS, READY, CANCELED}),
        WAITING_FOR_DEVELOPER: frozenset({IN_PROGRESS, READY, CANCELED}),
        READY_FOR_TESTING: frozenset({CODE_REVIEW, IN_PROGRESS, CANCELED}),
        CODE_REVIEW: frozenset({DONE, IN_PROGRESS, READY_FOR_TESTING}),
        DONE: frozenset(),
        CANCELED: frozenset(),
    },
    EPIC: {
        READY: frozenset({IN_PROGRESS, CANCELED}),
        IN_PROGRESS: frozenset({CODE_REVIEW, DONE, CANCELED}),
        CODE_REVIEW: frozenset({DONE, IN_PROGRESS}),
        DONE: frozenset(),
        CANCELED: frozenset(),
    },
    ROCK: {
        READY: frozenset({IN_PROGRESS, CANCELED}),
        IN_PROGRESS: frozenset({DONE, CANCELED}),
        DONE: frozenset(),
        CANCELED: frozenset(),
    },
}


def statuses_for(item_type: str) -> tuple[str, ...]:
    """The statuses an item of this type can be in, in board order."""
    table = TRANSITIONS[item_type]
    return tuple(status for status in STATUSES if status in table)


def allowed_targets(item_type: str, from_status: str) -> frozenset[str]:
    return TRANSITIONS.get(item_type, {}).get(from_status, frozenset())


def normalise_role(role: str) -> str:
    return role.strip().lower().replace("-", "_").replace(" ", "_")


@dataclass(frozen=True)
class ActorFacts:
    """What the rules need to know about whoever asks for the change."""

    seat: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)
    is_maintainer: bool = False
    can_finalize: bool = False
    decided_by_person: bool = False  # an agent seat carrying out a person's approval

    @property
    def is_project_manager(self) -> bool:
        return any(normalise_role(role) in PROJECT_MANAGER_ROLES for role in self.roles)


@dataclass(frozen=True)
class TransitionRequest:
    item_type: str
    from_status: str
    to_status: str
    actor: ActorFacts
    wait_reason: str = ""
    last_worked_by_seat: str = ""
    last_verification: str = ""
    verification_required: bool = False
    unfinished_children: int = 0


class Refusal(Exception):
    """A refused transition: `code` for programs, `message` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _describe(status: str) -> str:
    return status.replace("_", " ")


def check_transition(request: TransitionRequest) -> None:
    """Return when the change is allowed; raise Refusal with the first rule that forbids it."""
    kind, source, target, actor = request.item_type, request.from_status, request.to_status, request.actor
    if kind not in TRANSITIONS:
        raise Refusal("illegal_transition", f"Unknown item type {kind!r}.")
    table = TRANSITIONS[kind]
    if target not in table:
        known = ", ".join(statuses_for(kind))
        raise Refusal("illegal_transition", f"{target!r} is not a status of an {kind}; use one of: {known}.")
    targets = table.get(source, frozenset())
    if target not in targets:
        if source in FINAL_STATUSES:
            reason = f"an {kind} that is {_describe(source)} is final and cannot move"
        elif targets:
            options = ", ".join(_describe(s) for s in statuses_for(kind) if s in targets)
            reason = f"from {_describe(source)} an {kind} may move only to: {options}"
        else:
            reason = f"an {kind} cannot move from {_describe(source)}"
        raise Refusal(
            "illegal_transition", f"An {kind} cannot move from {_describe(source)} to {_describe(target)}: {reason}."
        )

    if target in WAITING_STATUSES:
        if not request.wait_reason:
            options = ", ".join(f"{name} ({text})" for name, text in WAIT_REASONS.items())
            raise Refusal(
                "wait_reason_required", f"Moving to {_describe(target)} needs a wait_reason: one of {options}."
            )
        if request.wait_reason not in WAIT_REASONS:
            raise Refusal(
                "wait_reason_invalid",
                f"Unknown wait_reason {request.wait_reason!r}; use one of: {', '.join(WAIT_REASONS)}.",
            )
    elif request.wait_reason:
        raise Refusal(
            "wait_reason_unexpected",
            f"A wait_reason is only given when moving to blocked or waiting for developer, not {_describe(target)}.",
        )

    if kind == ISSUE and target == DONE:
        if not actor.can_finalize:
            raise Refusal(
                "role_forbidden",
                "Only a finalizing role (the integrity guard, or a project maintainer) may move an issue to done.",
            )
        if actor.seat and actor.seat == request.last_worked_by_seat:
            raise Refusal(
                "same_seat",
                f"The seat {actor.seat!r} did the last work on this card and cannot also approve it; "
                "another finalizing seat must move it to done.",
            )
        if request.last_verification == VERIFICATION_FAILED:
            raise Refusal(
                "verification_failed",
                "The latest verification of this card failed; it cannot be done until a verification passes.",
            )
        agent_decides = actor.seat and not actor.decided_by_person
        if agent_decides and request.verification_required and request.last_verification != VERIFICATION_PASSED:
            raise Refusal(
                "verification_required",
                "The card's latest code has not passed a verification, and this project requires one before an "
                "agent may move a card to done. A card without a verification fixture is not verified: a person "
                "must add a fixture, approve the card, or turn the requirement off in the project settings.",
            )

    if target == CANCELED and not (actor.is_maintainer or actor.is_project_manager):
        raise Refusal("cancel_forbidden", f"Canceling an {kind} needs a project maintainer or a project-manager role.")

    if kind in (EPIC, ROCK) and target == DONE and request.unfinished_children:
        child = "cards" if kind == EPIC else "epics"
        raise Refusal(
            "children_unfinished",
            f"This {kind} still has {request.unfinished_children} {child} that are neither done nor canceled.",
        )


def is_allowed(request: TransitionRequest) -> bool:
    try:
        check_transition(request)
    except Refusal:
        return False
    return True


def replay(start: str, item_type: str, steps: Iterable[tuple[str, str]]) -> str:
    """Follow (from, to) steps from `start`, raising Refusal when one is not an edge of the table."""
    current = start
    for source, target in steps:
        if source != current:
            raise Refusal("illegal_transition", f"History says {source!r} but the item was {current!r}.")
        if target not in allowed_targets(item_type, source):
            raise Refusal("illegal_transition", f"{source!r} -> {target!r} is not an edge for an {item_type}.")
        current = target
    return current
