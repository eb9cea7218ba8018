"""Reads that more than one caller needs. Each loads what it needs in a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from boards import governance, machine, scheduling
from boards.models import Card, CardDependency, Epic

BOARD_CARD_FIELDS = (
    "id",
    "epic",
    "title",
    "status",
    "priority",
    "wait_reason",
    "seat",
    "labels",
    "last_verification",
    "last_worked_by_seat",
    "rank",
    "pull_request",
    "review_cycle",
    "created_at",  # for the scheduling order; the board lists leave it out
)
# Turning timestamps into datetimes is the dearest part of reading thousands of cards, so the
# project board, which does not schedule, reads none.
LANE_CARD_FIELDS = tuple(name for name in BOARD_CARD_FIELDS if name != "created_at")


@dataclass
class EpicBoard:
    epic: Epic
    cards: list[dict[str, Any]]
    dependencies: list[tuple[int, int]]
    order: list[int]


def _sched_cards(cards: list[dict[str, Any]]) -> list[scheduling.SchedCard]:
    return [
        scheduling.SchedCard(
            id=card["id"],
            status=card["status"],
            priority=card["priority"],
            rank=card["rank"],
            created_at=card["created_at"],
        )
        for card in cards
    ]


def epic_board(epic: Epic) -> EpicBoard:
    """Everything a board needs for one epic in two queries, whatever the number of cards: the
    cards, and the dependency pairs of its cards (with the status of each prerequisite, so a card
    waiting on another epic's unfinished card is not runnable). `order` is the serving order."""
    cards = list(Card.objects.filter(epic_id=epic.pk).order_by("rank", "id").values(*BOARD_CARD_FIELDS))
    rows = list(
        CardDependency.objects.filter(card__epic_id=epic.pk).values_list(
            "card_id", "depends_on_id", "depends_on__status"
        )
    )
    dependencies = [(card_id, depends_on) for card_id, depends_on, _ in rows]
    sched = _sched_cards(cards)
    known = {card.id for card in sched}
    outside: dict[int, scheduling.SchedCard] = {}
    for _, depends_on, status in rows:
        if depends_on not in known and depends_on not in outside:
            outside[depends_on] = scheduling.SchedCard(
                id=depends_on, status=status, priority=0.0, rank=0.0, created_at=epic.created_at
            )
    ordered = scheduling.schedule([*sched, *outside.values()], dependencies)
    return EpicBoard(
        epic=epic, cards=cards, dependencies=dependencies, order=[card.id for card in ordered if card.id in known]
    )


@dataclass
class ProjectBoard:
    epics: list[dict[str, Any]]
    cards: list[dict[str, Any]]
    dependencies: list[tuple[int, int]]


def project_board(project_id: int) -> ProjectBoard:
    """The cards of every epic of a project that is not archived, for swimlanes by epic, in three queries
    whatever the number of cards: the epics, the cards, and the dependency pairs of those cards."""
    epics = list(
        Epic.objects.filter(project_id=project_id, archived_at__isnull=True)
        .order_by("rank", "id")
        .values("id", "name", "status", "rank")
    )
    cards = list(
        Card.objects.filter(project_id=project_id, epic__archived_at__isnull=True)
        .order_by("epic__rank", "epic_id", "rank", "id")
        .values(*LANE_CARD_FIELDS)
    )
    dependencies = list(
        CardDependency.objects.filter(card__project_id=project_id).values_list("card_id", "depends_on_id")
    )
    return ProjectBoard(epics=epics, cards=cards, dependencies=dependencies)


def epic_schedule(epic: Epic) -> list[int]:
    """Card ids in serving order: code_review first, then runnable ready cards by critical path."""
    return epic_board(epic).order


def card_queryset() -> QuerySet[Card]:
    return Card.objects.select_related("epic")


def card_dependency_ids(card: Card) -> tuple[list[int], list[int]]:
    """(cards this card depends on, cards that depend on it)."""
    depends_on = list(CardDependency.objects.filter(card_id=card.pk).values_list("depends_on_id", flat=True))
    dependents = list(CardDependency.objects.filter(depends_on_id=card.pk).values_list("card_id", flat=True))
    return depends_on, dependents


def epic_run_gate(epic: Epic) -> governance.GateDecision:
    """Whether the complexity gate lets this epic run."""
    count = Card.objects.filter(epic_id=epic.pk).exclude(status=machine.CANCELED).count()
    project = epic.project
    return governance.epic_may_run(
        card_count=count,
        threshold=project.complexity_threshold,
        architecture_governance=project.architecture_governance or epic.architecture_governance,
    )


def epics_with_counts(queryset: QuerySet[Epic]) -> QuerySet[Epic]:
    return queryset.select_related("project").annotate(
        card_count=Count("cards", filter=~Q(cards__status=machine.CANCELED), distinct=True),
        done_count=Count("cards", filter=Q(cards__status=machine.DONE), distinct=True),
    )
