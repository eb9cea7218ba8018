"""Scheduling order and dependency cycles, as pure functions (no Django, no I/O).

A card is runnable when it is `ready` and every card it depends on is `done`. Runnable cards are
ordered by critical path: score = priority + the number of unfinished cards that depend on it,
directly or transitively; ties by rank, then age (older first), then id. Cards in `code_review`
are served before any new work, in the same order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from boards.machine import CODE_REVIEW, DONE, FINAL_STATUSES, READY

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class SchedCard:
    id: int
    status: str
    priority: float
    rank: float
    created_at: datetime


def dependents_count(cards: Sequence[SchedCard], dependencies: Iterable[tuple[int, int]]) -> dict[int, int]:
    """For each card, how many unfinished cards depend on it directly or transitively.

    `dependencies` holds (card, depends_on) pairs. Uses bitsets over a topological order, so it is
    near linear for thousands of cards; a cycle (which the service never lets in) is tolerated by
    leaving its members with the dependents found before the cycle.
    """
    index = {card.id: position for position, card in enumerate(cards)}
    unfinished = [card.status not in FINAL_STATUSES for card in cards]
    dependents: dict[int, list[int]] = defaultdict(list)  # depends_on -> cards that depend on it
    indegree = [0] * len(cards)
    for card_id, depends_on in dependencies:
        if card_id in index and depends_on in index:
            dependents[index[depends_on]].append(index[card_id])
            indegree[index[card_id]] += 1
    # Kahn order from cards that depend on nothing outwards; walking it backwards completes every
    # dependent's set before its prerequisites read it.
    order: list[int] = [position for position, degree in enumerate(indegree) if degree == 0]
    remaining = indegree[:]
    cursor = 0
    while cursor < len(order):
        node = order[cursor]
        cursor += 1
        for child in dependents[node]:
            remaining[child] -= 1
            if remaining[child] == 0:
                order.append(child)
    reach = [0] * len(cards)
    for node in reversed(order):
        bits = 0
        for child in dependents[node]:
            bits |= reach[child]
            if unfinished[child]:
                bits |= 1 << child
        reach[node] = bits
    return {card.id: reach[index[card.id]].bit_count() for card in cards}


def runnable(cards: Sequence[SchedCard], dependencies: Iterable[tuple[int, int]]) -> list[SchedCard]:
    """Ready cards whose every dependency is done (unordered)."""
    status_of = {card.id: card.status for card in cards}
    blocked: set[int] = set()
    for card_id, depends_on in dependencies:
        if status_of.get(depends_on) != DONE:
            blocked.add(card_id)
    return [card for card in cards if card.status == READY and card.id not in blocked]


def schedule(cards: Sequence[SchedCard], dependencies: Iterable[tuple[int, int]]) -> list[SchedCard]:
    """The order in which cards should be served: code_review first, then runnable ready cards."""
    pairs = list(dependencies)
    counts = dependents_count(cards, pairs)

    def key(card: SchedCard) -> tuple[float, float, datetime, int]:
        return (-(card.priority + counts[card.id]), card.rank, card.created_at, card.id)

    review = sorted((card for card in cards if card.status == CODE_REVIEW), key=key)
    return review + sorted(runnable(cards, pairs), key=key)


def find_cycle(edges: Iterable[tuple[K, K]], new_edge: tuple[K, K] | None = None) -> list[K] | None:
    """A dependency cycle as a path [a, b, ..., a], or None.

    Edges are (card, depends_on). With `new_edge`, answers whether adding it would close a cycle,
    and the path starts at its card.
    """
    graph: dict[K, list[K]] = defaultdict(list)
    for source, target in edges:
        graph[source].append(target)
    if new_edge is not None:
        source, target = new_edge
        if source == target:
            return [source, source]
        path = _path(graph, target, source)
        return [source, *path] if path else None
    # Whole-graph check: iterative depth-first search with colours.
    white, grey, black = 0, 1, 2
    colour: dict[K, int] = defaultdict(int)
    for start in list(graph):
        if colour[start] != white:
            continue
        stack: list[tuple[K, int]] = [(start, 0)]
        trail: list[K] = [start]
        colour[start] = grey
        while stack:
            node, position = stack[-1]
            children = graph.get(node, [])
            if position < len(children):
                stack[-1] = (node, position + 1)
                child = children[position]
                if colour[child] == grey:
                    return [*trail[trail.index(child) :], child]
                if colour[child] == white:
                    colour[child] = grey
                    stack.append((child, 0))
                    trail.append(child)
            else:
                colour[node] = black
                stack.pop()
                trail.pop()
    return None


def _path(graph: dict[K, list[K]], start: K, goal: K) -> list[K] | None:
    """A path start -> ... -> goal following edges (breadth first, so the shortest), or None."""
    parents: dict[K, K | None] = {start: None}
    queue = [start]
    cursor = 0
    while cursor < len(queue):
        node = queue[cursor]
        cursor += 1
        if node == goal:
            path = [node]
            while (parent := parents[path[-1]]) is not None:
                path.append(parent)
            return path[::-1]
        for child in graph.get(node, []):
            if child not in parents:
                parents[child] = node
                queue.append(child)
    return None


def describe_cycle(path: Sequence[object]) -> str:
    return " -> ".join(str(step) for step in path)
