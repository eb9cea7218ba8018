"""Scheduling order, runnability, cycles (pure) and the board selector (database)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from boards import selectors, services
from boards.actors import Actor
from boards.errors import InvalidInput
from boards.models import Card, CardDependency, Epic
from boards.scheduling import SchedCard, dependents_count, describe_cycle, find_cycle, runnable, schedule
from tests.boards.conftest import CODER

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def card(id: int, status: str = "ready", priority: float = 2.0, rank: float = 0.0, age: int = 0) -> SchedCard:
    return SchedCard(id=id, status=status, priority=priority, rank=rank, created_at=T0 - timedelta(minutes=age))


def ids(cards: list[SchedCard]) -> list[int]:
    return [c.id for c in cards]


def test_low_priority_card_with_three_dependents_beats_high_priority_leaf() -> None:
    cards = [card(1, priority=1.0), card(2, priority=3.0), card(3), card(4), card(5)]
    deps = [(3, 1), (4, 3), (5, 1)]  # 3 and 5 need 1; 4 needs 3: three cards wait on card 1
    assert dependents_count(cards, deps)[1] == 3
    assert ids(schedule(cards, deps)) == [1, 2]  # 1.0 + 3 beats 3.0 + 0; 3, 4, 5 are not runnable


def test_unfinished_dependency_is_not_runnable_and_only_ready_cards_run() -> None:
    cards = [
        card(1, status="in_progress"),
        card(2),
        card(3, status="done"),
        card(4),
        card(5, status="blocked"),
        card(6, status="canceled"),
    ]
    deps = [(2, 1), (4, 3)]
    assert ids(runnable(cards, deps)) == [4]
    assert ids(schedule(cards, deps)) == [4]


def test_code_review_first_then_ties_by_rank_then_age() -> None:
    cards = [card(1, rank=2.0), card(2, rank=1.0), card(3, rank=1.0, age=5), card(4, status="code_review", priority=0)]
    assert ids(schedule(cards, [])) == [4, 3, 2, 1]


def test_finished_dependents_do_not_count() -> None:
    cards = [card(1), card(2, status="canceled"), card(3)]
    assert dependents_count(cards, [(2, 1)])[1] == 0


def test_cycles_are_found_with_their_path() -> None:
    edges = [("A", "B"), ("B", "C")]
    assert find_cycle(edges) is None
    assert find_cycle(edges, ("C", "A")) == ["C", "A", "B", "C"]
    assert find_cycle(edges, ("A", "C")) is None
    assert find_cycle(edges, ("A", "A")) == ["A", "A"]
    cycle = find_cycle([*edges, ("C", "A")])
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"A", "B", "C"}
    assert describe_cycle(["A", "B", "C", "A"]) == "A -> B -> C -> A"


def test_dependency_cycle_refused_naming_it(epic: Epic, make_card: Callable[..., Card], maintainer: Any) -> None:
    actor = Actor.for_user(maintainer)
    a, b, c = make_card("Alpha"), make_card("Beta"), make_card("Gamma")
    services.dependency_add(card=a, depends_on=b, actor=actor)
    services.dependency_add(card=b, depends_on=c, actor=actor)
    with pytest.raises(InvalidInput) as caught:
        services.dependency_add(card=c, depends_on=a, actor=actor)
    assert caught.value.code == "dependency_cycle"
    assert "'Gamma' -> " in caught.value.message and "'Alpha'" in caught.value.message
    assert caught.value.extra["cycle"] == [c.pk, a.pk, b.pk, c.pk]
    with pytest.raises(InvalidInput) as caught:
        services.dependency_add(card=a, depends_on=a, actor=actor)
    assert caught.value.code == "dependency_self"
    with pytest.raises(InvalidInput) as caught:
        services.dependency_add(card=a, depends_on=b, actor=actor)
    assert caught.value.code == "dependency_exists"
    assert CardDependency.objects.count() == 2


def test_board_selector_queries_do_not_grow(epic: Epic, make_card: Callable[..., Card], maintainer: Any) -> None:
    actor = Actor.for_user(maintainer)

    def board_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            selectors.epic_board(epic)
        return len(queries)

    first = [make_card(f"c{n}") for n in range(3)]
    services.dependency_add(card=first[1], depends_on=first[0], actor=actor)
    small = board_queries()
    more = [make_card(f"d{n}") for n in range(30)]
    for n in range(1, 30):
        services.dependency_add(card=more[n], depends_on=more[n - 1], actor=actor)
    assert board_queries() == small == 2


def test_board_order_uses_the_critical_path(epic: Epic, make_card: Callable[..., Card], maintainer: Any) -> None:
    actor = Actor.for_user(maintainer)
    root = make_card("root", priority="low")
    leaf = make_card("leaf", priority="high")
    for n in range(3):
        services.dependency_add(card=make_card(f"needs root {n}"), depends_on=root, actor=actor)
    review = make_card("in review", priority="low")
    for status in ("in_progress", "code_review"):
        services.card_transition(card=review, to_status=status, actor=CODER)
    other_epic = services.epic_create(project=epic.project, actor=actor, name="Other")
    outside = make_card("outside", target_epic=other_epic)
    waiting = make_card("waits on another epic")
    services.dependency_add(card=waiting, depends_on=outside, actor=actor)
    assert selectors.epic_board(epic).order == [review.pk, root.pk, leaf.pk]
    assert selectors.epic_schedule(epic) == [review.pk, root.pk, leaf.pk]
