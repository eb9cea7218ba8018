"""Writes for the boards app. Every function validates, writes in one transaction, and raises a
BoardsError subclass when the change is refused, leaving the database as it was."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from boards import machine, scheduling
from boards.actors import Actor
from boards.errors import Forbidden, IllegalState, InvalidInput, NotFound
from boards.events import publish_card_event
from boards.models import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    PRIORITY_WORDS,
    Card,
    CardDependency,
    CardHistory,
    Comment,
    Epic,
    HistoryEvent,
    Membership,
    Project,
    ProjectRole,
    Rock,
)
from boards.signals import card_entered_review
from boards.transfer import ImportProblems, ParsedCard, export_epic, parse_epic, parse_epic_for_team

User = get_user_model()


def _unique_slug(name: str, requested: str = "") -> str:
    base = slugify(requested or name)[:70] or "project"
    if requested:
        if Project.objects.filter(slug=base).exists():
            raise InvalidInput(f"A project with the slug {base!r} already exists.", code="slug_taken")
        return base
    slug, counter = base, 2
    while Project.objects.filter(slug=slug).exists():
        slug = f"{base}-{counter}"
        counter += 1
    return slug


@transaction.atomic
def project_create(
    *,
    name: str,
    creator: AbstractBaseUser | None,
    slug: str = "",
    description: str = "",
    require_verification: bool = True,
) -> Project:
    name = name.strip()
    if not name:
        raise InvalidInput("A project needs a name.", code="name_required")
    project = Project.objects.create(
        name=name,
        slug=_unique_slug(name, slug),
        description=description,
        created_by=creator,
        require_verification=require_verification,
    )
    if creator is not None:
        Membership.objects.create(project=project, user=creator, role=ProjectRole.MAINTAINER)
    return project


@transaction.atomic
def project_update(*, project: Project, name: str | None = None, description: str | None = None) -> Project:
    if name is not None:
        if not name.strip():
            raise InvalidInput("A project needs a name.", code="name_required")
        project.name = name.strip()
    if description is not None:
        project.description = description
    project.save()
    return project


def _maintainer_count(project: Project) -> int:
    return Membership.objects.filter(project=project, role=ProjectRole.MAINTAINER).count()


@transaction.atomic
def membership_set(*, project: Project, username: str, role: str) -> Membership:
    """Add a user to the project or change their role. The last maintainer cannot step down."""
    if role not in ProjectRole.values:
        raise InvalidInput(f"Unknown role {role!r}; use one of {', '.join(ProjectRole.values)}.", code="bad_role")
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotFound(f"No active user named {username!r}.", code="user_not_found")
    Project.objects.select_for_update().filter(pk=project.pk).first()
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None:
        return Membership.objects.create(project=project, user=user, role=role)
    if membership.role == ProjectRole.MAINTAINER and role != ProjectRole.MAINTAINER and _maintainer_count(project) == 1:
        raise IllegalState("The project must keep at least one maintainer.", code="last_maintainer")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, project: Project, user_id: int) -> None:
    Project.objects.select_for_update().filter(pk=project.pk).first()
    membership = Membership.objects.filter(project=project, user_id=user_id).first()
    if membership is None:
        raise NotFound("That user is not a member of this project.", code="not_a_member")
    if membership.role == ProjectRole.MAINTAINER and _maintainer_count(project) == 1:
        raise IllegalState("The project must keep at least one maintainer.", code="last_maintainer")
    membership.delete()


# ---------------------------------------------------------------------------------------------
# The work model: rocks, epics, cards. Every status change goes through card_transition.
# ---------------------------------------------------------------------------------------------

WorkItem = Card | Epic | Rock
Item = TypeVar("Item", Card, Epic, Rock)


class TransitionRefused(IllegalState):
    """A status change the rules forbid; `code` says which rule (see boards.machine)."""

    status = 409
    code = "illegal_transition"


def parse_priority(value: Any) -> float:
    """3.0 high, 2.0 medium, 1.0 low; numbers within the range are taken as they are."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in PRIORITY_WORDS:
            return PRIORITY_WORDS[word]
        try:
            value = float(word)
        except ValueError as error:
            raise ValueError(f"Unknown priority {value!r}; use high, medium, low or a number.") from error
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"A priority is a number or high/medium/low, not {type(value).__name__}.")
    number = float(value)
    if not PRIORITY_MIN <= number <= PRIORITY_MAX:
        raise ValueError(f"A priority must lie between {PRIORITY_MIN:g} and {PRIORITY_MAX:g}, not {number:g}.")
    return number


def _history(item: WorkItem, actor: Actor, **fields: Any) -> CardHistory:
    subject = {"card": None, "epic": None, "rock": None, item.item_type if item.item_type != "issue" else "card": item}
    return CardHistory.objects.create(project_id=item.project_id, **subject, **actor.history_fields(), **fields)


def _event_kind(item: WorkItem, what: str) -> str:
    """`card.created` or `card.changed` (and the same for epics and rocks): boards re-fetch the item,
    so they need to know only that it is new or that something about it changed."""
    noun = "card" if item.item_type == machine.ISSUE else item.item_type
    return f"{noun}.{'created' if what == 'created' else 'changed'}"


def _publish_after_commit(item: WorkItem, what: str) -> None:
    project_id, item_id, kind = item.project_id, item.pk, _event_kind(item, what)
    transaction.on_commit(lambda: publish_card_event(project_id, kind, item_id))


def _unfinished_children(item: WorkItem) -> int:
    if isinstance(item, Epic):
        return Card.objects.filter(epic_id=item.pk).exclude(status__in=machine.FINAL_STATUSES).count()
    if isinstance(item, Rock):
        return Epic.objects.filter(rock_id=item.pk).exclude(status__in=machine.FINAL_STATUSES).count()
    return 0


def _apply_transition(*, item: WorkItem, to_status: str, actor: Actor, wait_reason: str, reason: str) -> WorkItem:
    """Check and apply one transition on a row the caller has locked."""
    facts = actor.facts(item.project_id)
    request = machine.TransitionRequest(
        item_type=item.item_type,
        from_status=item.status,
        to_status=to_status,
        actor=facts,
        wait_reason=wait_reason,
        last_worked_by_seat=getattr(item, "last_worked_by_seat", ""),
        last_verification=getattr(item, "last_verification", ""),
        verification_required=isinstance(item, Card) and _project_requires_verification(item.project_id),
        unfinished_children=_unfinished_children(item) if to_status == machine.DONE else 0,
    )
    try:
        machine.check_transition(request)
    except machine.Refusal as refusal:
        raise TransitionRefused(
            refusal.message, code=refusal.code, from_status=item.status, to_status=to_status
        ) from refusal
    from_status = item.status
    item.status = to_status
    update_fields = ["status", "updated_at"]
    if isinstance(item, Card):
        item.wait_reason = wait_reason if to_status in machine.WAITING_STATUSES else ""
        update_fields.append("wait_reason")
        if to_status in machine.WORK_STATUSES and facts.seat:
            item.last_worked_by_seat = facts.seat
            update_fields.append("last_worked_by_seat")
    item.save(update_fields=update_fields)
    _history(
        item,
        actor,
        event=HistoryEvent.TRANSITION,
        from_status=from_status,
        to_status=to_status,
        wait_reason=wait_reason if to_status in machine.WAITING_STATUSES else "",
        reason=reason,
    )
    _publish_after_commit(item, "transition")
    if isinstance(item, Card) and to_status == machine.CODE_REVIEW:
        card_id, project_id = item.pk, item.project_id
        transaction.on_commit(lambda: card_entered_review.send(sender=Card, card_id=card_id, project_id=project_id))
    return item


def _started(item: WorkItem) -> str:
    noun = "Card" if item.item_type == machine.ISSUE else item.item_type.capitalize()
    return f"{noun} #{item.pk} {str(item)!r} started."


def _roll_up_started(item: WorkItem, cause: str) -> None:
    """An epic starts when its first card does; a rock when its first epic does."""
    parent: Epic | Rock | None = None
    if isinstance(item, Card):
        parent = Epic.objects.select_for_update().get(pk=item.epic_id)
    elif isinstance(item, Epic) and item.rock_id is not None:
        parent = Rock.objects.select_for_update().get(pk=item.rock_id)
    if parent is None or parent.status != machine.READY:
        return
    _apply_transition(
        item=parent, to_status=machine.IN_PROGRESS, actor=Actor.orket("roll-up"), wait_reason="", reason=cause
    )
    _roll_up_started(parent, _started(parent))


@transaction.atomic
def card_transition(
    *, card: WorkItem, to_status: str, actor: Actor, wait_reason: str = "", reason: str = ""
) -> WorkItem:
    """The one way any card, epic or rock changes status.

    Locks the row, asks the state machine, writes the history row, rolls the start up to the epic
    and rock, and publishes a change event after commit. A refusal raises TransitionRefused (409,
    with the rule's code) and changes nothing.
    """
    model = type(card)
    locked = model.objects.select_for_update().filter(pk=card.pk).first()
    if locked is None:
        raise NotFound(f"That {card.item_type} no longer exists.")
    if len(reason) > 5_000:
        raise InvalidInput("The reason is longer than 5,000 characters.", code="reason_too_long")
    _apply_transition(item=locked, to_status=to_status, actor=actor, wait_reason=wait_reason, reason=reason)
    if to_status == machine.IN_PROGRESS:
        _roll_up_started(locked, _started(locked))
    for name in ("status", "wait_reason", "last_worked_by_seat", "updated_at"):
        if hasattr(locked, name):
            setattr(card, name, getattr(locked, name))
    return locked


# Fields people and agents may edit; status is never among them.
CARD_EDITABLE = (
    "title",
    "description",
    "priority",
    "seat",
    "requirements",
    "acceptance_criteria",
    "labels",
    "verification_fixture",
    "verification_scenarios",
    "last_verification",
    "metrics",
    "note",
    "rank",
)
EPIC_EDITABLE = ("name", "description", "team", "environment", "architecture_governance", "rank", "rock")
ROCK_EDITABLE = ("name", "description", "rank")
_LONG_TEXT = {"description", "requirements", "acceptance_criteria", "note"}


def _changes(item: WorkItem, fields: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, new in fields.items():
        old = getattr(item, name)
        if isinstance(old, Rock | Epic):
            old = old.pk
        if isinstance(new, Rock | Epic):
            new = new.pk
        if old == new:
            continue
        changes[name] = "changed" if name in _LONG_TEXT else [old, new]
    return changes


_EDITABLE: dict[type[WorkItem], tuple[str, ...]] = {Card: CARD_EDITABLE, Epic: EPIC_EDITABLE, Rock: ROCK_EDITABLE}


@transaction.atomic
def _item_update(*, item: Item, actor: Actor, fields: dict[str, Any]) -> Item:
    """The one edit step behind card_update, epic_update and rock_update: lock the row, refuse the
    status and any field its kind does not allow, save the changes with a history row, and publish an
    event after commit. Nothing changed means no history row and no event."""
    locked = type(item).objects.select_for_update().get(pk=item.pk)
    editable = _EDITABLE[type(item)]
    if "status" in fields:
        raise InvalidInput(
            "The status cannot be edited; use the transition endpoint (POST .../transition/).", code="status_readonly"
        )
    unknown = sorted(set(fields) - set(editable))
    if unknown:
        raise InvalidInput(f"These fields cannot be edited: {', '.join(unknown)}.", code="not_editable")
    actor.facts(locked.project_id)
    if "priority" in fields:
        try:
            fields["priority"] = parse_priority(fields["priority"])
        except ValueError as error:
            raise InvalidInput(str(error), code="bad_priority") from error
    if "title" in fields or "name" in fields:
        key = "title" if "title" in fields else "name"
        fields[key] = str(fields[key]).strip()
        if not fields[key]:
            raise InvalidInput(f"The {key} cannot be empty.", code=f"{key}_required")
    if isinstance(fields.get("rock"), Rock) and fields["rock"].project_id != locked.project_id:
        raise InvalidInput("The rock belongs to another project.", code="wrong_project")
    changes = _changes(locked, fields)
    if not changes:
        return locked
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.save()
    _history(
        locked, actor, event=HistoryEvent.EDITED, from_status=locked.status, to_status=locked.status, changes=changes
    )
    _publish_after_commit(locked, "edited")
    return locked


def card_update(*, card: Card, actor: Actor, **fields: Any) -> Card:
    return _item_update(item=card, actor=actor, fields=fields)


@transaction.atomic
def card_review_record(
    *,
    card: Card,
    actor: Actor,
    pull_request: dict[str, Any] | None = None,
    review_cycle: int | None = None,
    review_reason: dict[str, Any] | None = None,
) -> Card:
    """Record what a code forge says about the card: its pull request ({number, url, state}), the
    review cycle, and one more rejection reason. Not editable through card_update."""
    locked = Card.objects.select_for_update().get(pk=card.pk)
    fields: dict[str, Any] = {}
    if pull_request is not None:
        fields["pull_request"] = dict(pull_request)
    if review_cycle is not None:
        if review_cycle < 0:
            raise InvalidInput("A review cycle cannot be negative.", code="bad_review_cycle")
        fields["review_cycle"] = review_cycle
    if review_reason is not None:
        fields["review_reasons"] = [*locked.review_reasons, dict(review_reason)]
    changes = _changes(locked, fields)
    if not changes:
        return locked
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.save(update_fields=[*fields, "updated_at"])
    if "review_reasons" in changes:
        changes["review_reasons"] = "added"
    _history(
        locked, actor, event=HistoryEvent.EDITED, from_status=locked.status, to_status=locked.status, changes=changes
    )
    _publish_after_commit(locked, "edited")
    return locked


def _project_requires_verification(project_id: int) -> bool:
    return bool(Project.objects.filter(pk=project_id).values_list("require_verification", flat=True).first())


@transaction.atomic
def card_record_verification(*, card: Card, result: str, actor: Actor, reason: str = "") -> Card:
    """Record the outcome of the card's latest verification: `passed` or `failed` (anything that did not
    pass, a timeout or an error included, is recorded as failed, which keeps the card out of done), or
    "" when the card's code changed since, so the earlier result no longer speaks for it."""
    if result not in machine.VERIFICATION_RESULTS:
        raise InvalidInput(
            f"A verification result is {machine.VERIFICATION_PASSED} or {machine.VERIFICATION_FAILED}, not {result!r}.",
            code="bad_verification_result",
        )
    locked = Card.objects.select_for_update().filter(pk=card.pk).first()
    if locked is None:
        raise NotFound("That card no longer exists.")
    previous = locked.last_verification
    locked.last_verification = result
    locked.save(update_fields=["last_verification", "updated_at"])
    card.last_verification = result
    _history(
        locked,
        actor,
        event=HistoryEvent.EDITED,
        from_status=locked.status,
        to_status=locked.status,
        changes={"last_verification": [previous, result]},
        reason=reason[:5_000],
    )
    _publish_after_commit(locked, "edited")
    return locked


def epic_update(*, epic: Epic, actor: Actor, **fields: Any) -> Epic:
    return _item_update(item=epic, actor=actor, fields=fields)


def rock_update(*, rock: Rock, actor: Actor, **fields: Any) -> Rock:
    return _item_update(item=rock, actor=actor, fields=fields)


@transaction.atomic
def rock_create(*, project: Project, actor: Actor, name: str, description: str = "", rank: float = 0.0) -> Rock:
    actor.facts(project.pk)
    if not name.strip():
        raise InvalidInput("A rock needs a name.", code="name_required")
    rock = Rock.objects.create(project=project, name=name.strip(), description=description, rank=rank)
    _history(rock, actor, event=HistoryEvent.CREATED, to_status=rock.status)
    _publish_after_commit(rock, "created")
    return rock


@transaction.atomic
def epic_create(
    *,
    project: Project,
    actor: Actor,
    name: str,
    rock: Rock | None = None,
    description: str = "",
    team: str = "",
    environment: str = "",
    architecture_governance: bool = False,
    rank: float = 0.0,
) -> Epic:
    actor.facts(project.pk)
    if not name.strip():
        raise InvalidInput("An epic needs a name.", code="name_required")
    if rock is not None and rock.project_id != project.pk:
        raise InvalidInput("The rock belongs to another project.", code="wrong_project")
    epic = Epic.objects.create(
        project=project,
        rock=rock,
        name=name.strip(),
        description=description,
        team=team,
        environment=environment,
        architecture_governance=architecture_governance,
        rank=rank,
    )
    _history(epic, actor, event=HistoryEvent.CREATED, to_status=epic.status)
    _publish_after_commit(epic, "created")
    return epic


@transaction.atomic
def card_create(*, epic: Epic, actor: Actor, title: str, **fields: Any) -> Card:
    """A new card starts `ready`. Fields are those of CARD_EDITABLE; priority takes words too."""
    actor.facts(epic.project_id)
    unknown = sorted(set(fields) - set(CARD_EDITABLE))
    if "status" in fields:
        raise InvalidInput("A new card always starts ready; change its status afterwards.", code="status_readonly")
    if unknown:
        raise InvalidInput(f"Unknown card fields: {', '.join(unknown)}.", code="not_editable")
    if not title.strip():
        raise InvalidInput("A card needs a title.", code="title_required")
    if "priority" in fields:
        try:
            fields["priority"] = parse_priority(fields["priority"])
        except ValueError as error:
            raise InvalidInput(str(error), code="bad_priority") from error
    if "rank" not in fields:
        last = Card.objects.filter(epic_id=epic.pk).order_by("-rank").values_list("rank", flat=True).first()
        fields["rank"] = (last or 0.0) + 1.0
    card = Card.objects.create(project_id=epic.project_id, epic=epic, title=title.strip(), **fields)
    _history(card, actor, event=HistoryEvent.CREATED, to_status=card.status)
    _publish_after_commit(card, "created")
    return card


def _label(card_id: int, titles: dict[int, str]) -> str:
    return f"#{card_id} {titles.get(card_id, '')!r}".strip()


@transaction.atomic
def dependency_add(*, card: Card, depends_on: Card, actor: Actor) -> CardDependency:
    """`card` waits for `depends_on`. Refuses self-dependencies, duplicates, other projects and cycles
    (naming the cycle)."""
    actor.facts(card.project_id)
    if card.pk == depends_on.pk:
        raise InvalidInput("A card cannot depend on itself.", code="dependency_self")
    if card.project_id != depends_on.project_id:
        raise InvalidInput("Both cards must be in the same project.", code="wrong_project")
    # Serialise dependency changes per project so two concurrent additions cannot close a cycle.
    Project.objects.select_for_update().filter(pk=card.project_id).first()
    if CardDependency.objects.filter(card_id=card.pk, depends_on_id=depends_on.pk).exists():
        raise InvalidInput(f"Card #{card.pk} already depends on card #{depends_on.pk}.", code="dependency_exists")
    edges = list(
        CardDependency.objects.filter(card__project_id=card.project_id).values_list("card_id", "depends_on_id")
    )
    cycle = scheduling.find_cycle(edges, (card.pk, depends_on.pk))
    if cycle:
        titles = dict(Card.objects.filter(pk__in=set(cycle)).values_list("pk", "title"))
        path = " -> ".join(_label(step, titles) for step in cycle)
        raise InvalidInput(
            f"This dependency would close a cycle: {path}.", code="dependency_cycle", cycle=[int(c) for c in cycle]
        )
    link = CardDependency.objects.create(card=card, depends_on=depends_on)
    _history(card, actor, event=HistoryEvent.DEPENDENCY_ADDED, changes={"depends_on": depends_on.pk})
    _publish_after_commit(card, "edited")
    return link


@transaction.atomic
def dependency_remove(*, card: Card, depends_on_id: int, actor: Actor) -> None:
    actor.facts(card.project_id)
    deleted, _ = CardDependency.objects.filter(card_id=card.pk, depends_on_id=depends_on_id).delete()
    if not deleted:
        raise NotFound(f"Card #{card.pk} does not depend on card #{depends_on_id}.", code="dependency_not_found")
    _history(card, actor, event=HistoryEvent.DEPENDENCY_REMOVED, changes={"depends_on": depends_on_id})
    _publish_after_commit(card, "edited")


@transaction.atomic
def comment_add(*, card: Card, actor: Actor, body: str) -> Comment:
    actor.facts(card.project_id)
    if not body.strip():
        raise InvalidInput("A comment cannot be empty.", code="body_required")
    comment = Comment.objects.create(
        card=card, author=actor.user, author_seat="" if actor.user is not None else actor.seat, body=body
    )
    _publish_after_commit(card, "commented")
    return comment


MAX_ANSWER_CHARS = 20_000


@transaction.atomic
def card_answer(*, card: Card, actor: Actor, body: str) -> Card:
    """A person answers the question a blocked or waiting card asks: the answer becomes the person's
    comment (which the next turn's prompt shows) and the card goes back to ready."""
    if not actor.is_user:
        raise Forbidden("Only a person answers a card.", code="person_required")
    body = body.strip()
    if len(body) > MAX_ANSWER_CHARS:
        raise InvalidInput(f"The answer is longer than {MAX_ANSWER_CHARS:,} characters.", code="answer_too_long")
    locked = Card.objects.select_for_update().filter(pk=card.pk).first()
    if locked is None:
        raise NotFound("That card no longer exists.")
    actor.facts(locked.project_id)
    if locked.status not in machine.WAITING_STATUSES:
        raise IllegalState(
            f"Card #{locked.pk} is {locked.status}; only a blocked or waiting card asks for an answer.",
            code="not_waiting",
        )
    comment_add(card=locked, actor=actor, body=body)
    summary = body if len(body) <= 300 else body[:300] + " [...]"
    return card_transition(
        card=locked, to_status=machine.READY, actor=actor, reason=f"Answered by {actor.user}: {summary}"
    )


@transaction.atomic
def card_record_decision(*, card: Card, actor: Actor, reason: str) -> CardHistory:
    """A history row for a person's decision about the card's work that is not a status change
    (such as approving or rejecting an agent's tool call)."""
    actor.facts(card.project_id)
    if len(reason) > 5_000:
        raise InvalidInput("The reason is longer than 5,000 characters.", code="reason_too_long")
    row = _history(card, actor, event=HistoryEvent.DECISION, reason=reason)
    _publish_after_commit(card, "decision")
    return row


class ImportInvalid(InvalidInput):
    """The import document has problems; `errors` lists each with its JSON path."""

    code = "import_invalid"


def _import_problems(problems: ImportProblems, what: str) -> ImportInvalid:
    count = len(problems.problems)
    first = problems.problems[0]
    return ImportInvalid(
        f"{what}: {count} problem{'s' if count != 1 else ''}, the first at {first.path}: {first.message}.",
        errors=[problem.as_dict() for problem in problems.problems],
    )


def _create_parsed_cards(
    *, project: Project, epic: Epic, cards: list[ParsedCard], actor: Actor, first_rank: float, reason: str
) -> list[Card]:
    """Cards, their dependencies (indexes into `cards`) and their history rows, in bulk."""
    created = Card.objects.bulk_create(
        [
            Card(
                project=project,
                epic=epic,
                title=item.title,
                seat=item.seat,
                priority=item.priority,
                description=item.description,
                requirements=item.requirements,
                acceptance_criteria=item.acceptance_criteria,
                labels=item.labels,
                note=item.note,
                verification_fixture=item.verification_fixture,
                verification_scenarios=item.verification_scenarios,
                rank=first_rank + position,
            )
            for position, item in enumerate(cards)
        ]
    )
    if any(card.pk is None for card in created):  # backends without RETURNING: read the ids back in rank order
        created = list(Card.objects.filter(epic=epic, rank__gte=first_rank).order_by("rank", "id"))
    CardDependency.objects.bulk_create(
        [
            CardDependency(card=created[index], depends_on=created[target])
            for index, item in enumerate(cards)
            for target in item.depends_on
        ]
    )
    CardHistory.objects.bulk_create(
        [
            CardHistory(
                project=project,
                card=card,
                event=HistoryEvent.CREATED,
                to_status=card.status,
                reason=reason,
                **actor.history_fields(),
            )
            for card in created
        ]
    )
    return created


@transaction.atomic
def epic_import(*, project: Project, data: Any, actor: Actor, rock: Rock | None = None) -> Epic:
    """Create an epic and its cards and dependencies from Orket's JSON format, all or nothing."""
    actor.facts(project.pk)
    try:
        parsed = parse_epic(data)
    except ImportProblems as problems:
        raise _import_problems(problems, "The epic was not imported") from problems
    if rock is not None and rock.project_id != project.pk:
        raise InvalidInput("The rock belongs to another project.", code="wrong_project")
    epic = Epic.objects.create(
        project=project,
        rock=rock,
        name=parsed.name,
        description=parsed.description,
        team=parsed.team,
        environment=parsed.environment,
        architecture_governance=parsed.architecture_governance,
    )
    _history(epic, actor, event=HistoryEvent.CREATED, to_status=epic.status, reason="imported")
    _create_parsed_cards(project=project, epic=epic, cards=parsed.cards, actor=actor, first_rank=1.0, reason="imported")
    _publish_after_commit(epic, "created")
    return epic


@transaction.atomic
def epic_cards_import(
    *, epic: Epic, data: Any, actor: Actor, known_seats: Collection[str] | None = None, reason: str = "imported"
) -> list[Card]:
    """Add the cards of an epic document (Orket's JSON format; its epic fields other than the cards are
    ignored) to an existing epic, after its cards, all or nothing. With `known_seats`, every card's
    seat must be one of them."""
    actor.facts(epic.project_id)
    locked = Epic.objects.select_for_update().filter(pk=epic.pk).first()
    if locked is None:
        raise NotFound("That epic no longer exists.")
    if locked.archived_at is not None:
        raise IllegalState("The epic is archived; restore it before adding cards.", code="epic_archived")
    document = {**data, "name": data.get("name") or locked.name} if isinstance(data, dict) else data
    try:
        parsed = parse_epic_for_team(document, known_seats=known_seats)
    except ImportProblems as problems:
        raise _import_problems(problems, "No cards were created") from problems
    if not parsed.cards:
        raise InvalidInput("The document holds no cards.", code="no_cards")
    last = Card.objects.filter(epic_id=locked.pk).order_by("-rank").values_list("rank", flat=True).first()
    cards = _create_parsed_cards(
        project=locked.project,
        epic=locked,
        cards=parsed.cards,
        actor=actor,
        first_rank=(last or 0.0) + 1.0,
        reason=reason,
    )
    _history(
        locked,
        actor,
        event=HistoryEvent.EDITED,
        from_status=locked.status,
        to_status=locked.status,
        changes={"cards_added": len(cards)},
        reason=reason,
    )
    _publish_after_commit(locked, "edited")  # one event: the board reloads the epic
    return cards


@transaction.atomic
def project_archive(*, project: Project, archived: bool) -> Project:
    """Archive (hide from lists) or restore a project; nothing in it changes."""
    locked = Project.objects.select_for_update().get(pk=project.pk)
    if (locked.archived_at is not None) != archived:
        locked.archived_at = timezone.now() if archived else None
        locked.save(update_fields=["archived_at", "updated_at"])
    return locked


@transaction.atomic
def epic_archive(*, epic: Epic, actor: Actor, archived: bool) -> Epic:
    """Archive (hide from the board and lists) or restore an epic; its cards stay as they are."""
    actor.facts(epic.project_id)
    locked = Epic.objects.select_for_update().get(pk=epic.pk)
    if (locked.archived_at is not None) == archived:
        return locked
    locked.archived_at = timezone.now() if archived else None
    locked.save(update_fields=["archived_at", "updated_at"])
    _history(
        locked,
        actor,
        event=HistoryEvent.EDITED,
        from_status=locked.status,
        to_status=locked.status,
        changes={"archived": [not archived, archived]},
    )
    _publish_after_commit(locked, "edited")
    return locked


def epic_export(*, epic: Epic) -> dict[str, Any]:
    cards = list(Card.objects.filter(epic=epic).order_by("rank", "id"))
    dependencies = list(CardDependency.objects.filter(card__epic=epic).values_list("card_id", "depends_on_id"))
    return export_epic(epic, cards, dependencies)


@transaction.atomic
def project_settings_update(
    *,
    project: Project,
    actor: Actor,
    architecture_governance: bool | None = None,
    complexity_threshold: int | None = None,
    wip_limits: dict[str, int] | None = None,
    require_verification: bool | None = None,
) -> Project:
    """The work-model settings of a project; maintainers only."""
    actor.facts(project.pk, minimum=ProjectRole.MAINTAINER)
    locked = Project.objects.select_for_update().get(pk=project.pk)
    if architecture_governance is not None:
        locked.architecture_governance = architecture_governance
    if complexity_threshold is not None:
        if not 1 <= complexity_threshold <= 1_000:
            raise InvalidInput("The complexity threshold must lie between 1 and 1,000.", code="bad_threshold")
        locked.complexity_threshold = complexity_threshold
    if wip_limits is not None:
        if not isinstance(wip_limits, dict):
            raise InvalidInput("WIP limits are an object of status to limit.", code="bad_wip_limits")
        for status_name, limit in wip_limits.items():
            if status_name not in machine.STATUSES:
                raise InvalidInput(f"{status_name!r} is not a card status.", code="bad_wip_limits")
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise InvalidInput(
                    f"The limit for {status_name} must be a positive whole number.", code="bad_wip_limits"
                )
        locked.wip_limits = dict(wip_limits)
    if require_verification is not None:
        locked.require_verification = require_verification
    locked.save()
    return locked


# Ranks closer than this are renumbered before a card is placed between them.
RANK_MIN_GAP = 1e-6


def _rank_between(low: float | None, high: float | None) -> float | None:
    """A rank strictly between two neighbours (None: no neighbour on that side); None when too close."""
    if high is None:
        return 1.0 if low is None else low + 1.0
    if low is None:
        return high - 1.0
    if high - low < RANK_MIN_GAP:
        return None
    return (low + high) / 2


def _renumber_epic(epic_id: int) -> dict[int, float]:
    """Give every card of the epic the ranks 1, 2, 3... in its present order; returns id -> new rank."""
    ordered = list(Card.objects.filter(epic_id=epic_id).order_by("rank", "id").values_list("pk", flat=True))
    ranks = {pk: float(position + 1) for position, pk in enumerate(ordered)}
    Card.objects.bulk_update([Card(pk=pk, rank=rank) for pk, rank in ranks.items()], ["rank"], batch_size=500)
    return ranks


@transaction.atomic
def card_reorder(*, card: Card, actor: Actor, after_id: int | None = None, before_id: int | None = None) -> Card:
    """Place a card within its column (the cards of its epic in its status): right before `before_id`
    or, without it, right after `after_id`.

    The new rank lies halfway between the neighbours; when they are too close, the whole epic is
    renumbered first (its order kept) and boards are told to reload the epic. Writes a history row
    and publishes card.changed after commit. A neighbour that has left the column is refused (409),
    so a stale board reloads instead of guessing.
    """
    actor.facts(card.project_id)
    anchor = before_id if before_id is not None else after_id
    if anchor is None:
        raise InvalidInput("Say which card to place it after or before.", code="rank_neighbour_required")
    if anchor == card.pk:
        raise InvalidInput("A card cannot be placed next to itself.", code="rank_neighbour_self")
    # One reorder at a time per epic, so a renumbering never interleaves with another placement.
    Epic.objects.select_for_update().filter(pk=card.epic_id).first()
    locked = Card.objects.select_for_update().filter(pk=card.pk).first()
    if locked is None:
        raise NotFound("That card no longer exists.")
    column = list(
        Card.objects.filter(epic_id=locked.epic_id, status=locked.status)
        .exclude(pk=locked.pk)
        .order_by("rank", "id")
        .values_list("pk", "rank")
    )
    ids = [pk for pk, _ in column]
    if anchor not in ids:
        raise IllegalState(
            f"Card #{anchor} is no longer in the {locked.status.replace('_', ' ')} column of this epic; "
            "reload the board and try again.",
            code="rank_neighbour_moved",
        )
    index = ids.index(anchor) if before_id is not None else ids.index(anchor) + 1
    ranks = dict(column)
    low_id = ids[index - 1] if index > 0 else None
    high_id = ids[index] if index < len(ids) else None

    def bounds() -> tuple[float | None, float | None]:
        return (ranks[low_id] if low_id else None, ranks[high_id] if high_id else None)

    low, high = bounds()
    if (low is None or low < locked.rank) and (high is None or locked.rank < high):
        return locked  # already there
    rank = _rank_between(low, high)
    renumbered = rank is None
    if rank is None:
        ranks = _renumber_epic(locked.epic_id)
        locked.rank = ranks[locked.pk]
        low, high = bounds()
        rank = _rank_between(low, high)
        assert rank is not None  # renumbered neighbours are at least 1.0 apart
    old = locked.rank
    locked.rank = rank
    locked.save(update_fields=["rank", "updated_at"])
    where = f"placed before #{before_id}" if before_id is not None else f"placed after #{after_id}"
    _history(
        locked,
        actor,
        event=HistoryEvent.EDITED,
        from_status=locked.status,
        to_status=locked.status,
        reason=where,
        changes={"rank": [old, rank]},
    )
    _publish_after_commit(locked, "edited")
    if renumbered:
        _publish_after_commit(locked.epic, "edited")
    return locked
