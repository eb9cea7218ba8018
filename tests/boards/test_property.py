"""Random sequences of transition requests by random actors never leave the tables.

Checks after every run: each item's status is one the tables allow for its type, the history
replays (through table edges only) from ready to the current status, only finalizing actors ever
moved an issue to done, and a refused request changed nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from boards import machine, services
from boards.actors import Actor
from boards.errors import BoardsError
from boards.models import Card, CardHistory, Epic, HistoryEvent, Project
from boards.services import TransitionRefused

SEATS = [
    Actor.for_seat("coder", ["coder"]),
    Actor.for_seat("architect", ["architect"]),
    Actor.for_seat("integrity_guard", ["integrity_guard"], can_finalize=True),
    Actor.for_seat("reviewer_guard", ["integrity_guard"], can_finalize=True),
    Actor.for_seat("pm", ["project_manager"]),
]
PEOPLE = ["maintainer", "member", "viewer"]
N_CARDS = 3


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), length=st.integers(1, 40))
def test_random_requests_stay_within_the_tables(
    data: st.DataObject, length: int, project: Project, member_of: Callable[..., Any]
) -> None:
    people = {role: member_of(project, role) for role in PEOPLE}
    maintainer = Actor.for_user(people["maintainer"])
    epic = services.epic_create(project=project, actor=maintainer, name="Property")
    cards = [services.card_create(epic=epic, actor=maintainer, title=f"card {n}") for n in range(N_CARDS)]
    actors = [*SEATS, *(Actor.for_user(people[role]) for role in PEOPLE)]
    done_by: list[Actor] = []
    for _ in range(length):
        target_index = data.draw(st.integers(0, N_CARDS), label="item")  # N_CARDS is the epic itself
        item: Card | Epic = cards[target_index] if target_index < N_CARDS else epic
        model = type(item)
        current = model.objects.values_list("status", flat=True).get(pk=item.pk)
        # Half the time ask for an edge of the table, so runs get deep; otherwise anything at all.
        edges = sorted(machine.allowed_targets(item.item_type, current))
        anything = st.sampled_from(machine.STATUSES)
        to_status = data.draw(st.one_of(st.sampled_from(edges), anything) if edges else anything, label="to")
        if to_status in machine.WAITING_STATUSES:
            wait_reason = data.draw(st.sampled_from(["", *machine.WAIT_REASONS, "bogus"]), label="wait")
        else:
            wait_reason = data.draw(st.sampled_from(["", "", "", "", "input"]), label="wait")
        actor = actors[data.draw(st.integers(0, len(actors) - 1), label="actor")]
        verification = data.draw(st.sampled_from(["", "", "", "passed", "failed"]), label="verification")
        if target_index < N_CARDS and verification:
            services.card_update(card=cards[target_index], actor=maintainer, last_verification=verification)
        before = dict(model.objects.filter(pk=item.pk).values().get())
        rows_before = CardHistory.objects.filter(event=HistoryEvent.TRANSITION).count()
        try:
            services.card_transition(card=item, to_status=to_status, actor=actor, wait_reason=wait_reason)
        except TransitionRefused as refused:
            assert refused.code and refused.message
            assert dict(model.objects.filter(pk=item.pk).values().get()) == before
            assert CardHistory.objects.filter(event=HistoryEvent.TRANSITION).count() == rows_before
        except BoardsError:  # a viewer asking: refused before the machine is consulted
            assert actor.user == people["viewer"]
            assert dict(model.objects.filter(pk=item.pk).values().get()) == before
        else:
            if model is Card and to_status == machine.DONE:
                done_by.append(actor)
                event("an issue reached done")

    assert all(actor.can_finalize or actor.user == people["maintainer"] for actor in done_by)
    for card in Card.objects.filter(epic=epic):
        assert card.status in machine.statuses_for("issue")
        assert (card.wait_reason != "") == (card.status in machine.WAITING_STATUSES)
        rows = list(CardHistory.objects.filter(card=card, event=HistoryEvent.TRANSITION).select_related("actor_user"))
        assert machine.replay("ready", "issue", [(r.from_status, r.to_status) for r in rows]) == card.status
        for row in rows:
            if row.to_status == machine.DONE:
                assert "finalizer" in row.actor_roles or row.actor_user == people["maintainer"]
                assert row.actor_seat == "" or row.actor_seat != card.last_worked_by_seat or card.status != "done"
            if row.to_status == machine.CANCELED:
                assert "project_manager" in row.actor_roles or row.actor_user == people["maintainer"]
    epic.refresh_from_db()
    epic_rows = CardHistory.objects.filter(epic=epic, event=HistoryEvent.TRANSITION)
    assert machine.replay("ready", "epic", [(r.from_status, r.to_status) for r in epic_rows]) == epic.status
    if epic.status == machine.DONE:
        assert not Card.objects.filter(epic=epic).exclude(status__in=machine.FINAL_STATUSES).exists()
    started = Card.objects.filter(epic=epic).exclude(status__in=[machine.READY, machine.CANCELED])
    if started.exists() and epic.status == machine.READY:
        raise AssertionError("a card started but its epic did not roll up to in_progress")
