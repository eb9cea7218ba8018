"""Order within a column: boards.services.card_reorder and POST /api/cards/{id}/reorder/."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from rest_framework.test import APIClient

from boards import selectors, services
from boards.actors import Actor
from boards.errors import IllegalState, InvalidInput
from boards.events import project_group
from boards.models import Card, CardHistory, Epic, HistoryEvent, Project, ProjectRole
from tests.boards.conftest import CODER

pytestmark = pytest.mark.django_db


def column(epic: Epic, status: str = "ready") -> list[int]:
    return [card["id"] for card in selectors.epic_board(epic).cards if card["status"] == status]


@pytest.fixture
def four(make_card: Callable[..., Card]) -> list[Card]:
    return [make_card(f"Card {n}") for n in range(4)]


def test_a_card_goes_before_or_after_a_neighbour_and_keeps_other_cards_in_place(four: list[Card], epic: Epic) -> None:
    a, b, c, d = four
    services.card_reorder(card=d, actor=CODER, before_id=a.pk)
    assert column(epic) == [d.pk, a.pk, b.pk, c.pk]
    services.card_reorder(card=a, actor=CODER, after_id=c.pk)
    assert column(epic) == [d.pk, b.pk, c.pk, a.pk]
    services.card_reorder(card=c, actor=CODER, after_id=d.pk)
    assert column(epic) == [d.pk, c.pk, b.pk, a.pk]
    row = CardHistory.objects.filter(card=c, event=HistoryEvent.EDITED).latest("id")
    assert row.reason == f"placed after #{d.pk}" and list(row.changes) == ["rank"]
    assert row.actor_seat == "coder"
    # Placing a card where it already is changes nothing and writes no history.
    rows = CardHistory.objects.count()
    services.card_reorder(card=c, actor=CODER, after_id=d.pk)
    assert CardHistory.objects.count() == rows


def test_columns_are_ordered_separately(four: list[Card], epic: Epic) -> None:
    a, b, c, d = four
    services.card_transition(card=b, to_status="in_progress", actor=CODER)
    services.card_transition(card=d, to_status="in_progress", actor=CODER)
    services.card_reorder(card=d, actor=CODER, before_id=b.pk)
    assert column(epic, "in_progress") == [d.pk, b.pk]
    assert column(epic) == [a.pk, c.pk]
    with pytest.raises(IllegalState) as refused:
        services.card_reorder(card=a, actor=CODER, before_id=b.pk)
    assert refused.value.code == "rank_neighbour_moved"
    assert "in progress" not in refused.value.message and f"#{b.pk}" in refused.value.message
    with pytest.raises(InvalidInput):
        services.card_reorder(card=a, actor=CODER)
    with pytest.raises(InvalidInput):
        services.card_reorder(card=a, actor=CODER, after_id=a.pk)


def test_too_small_gaps_renumber_the_epic_and_tell_the_boards(
    four: list[Card], epic: Epic, django_capture_on_commit_callbacks: Any
) -> None:
    a, b, c, d = four
    # Move cards back and forth between the same two neighbours until the gap runs out.
    for step in range(60):
        mover = c if step % 2 == 0 else d
        services.card_reorder(card=mover, actor=CODER, after_id=a.pk)
    ranks = dict(Card.objects.filter(epic=epic).values_list("pk", "rank"))
    assert max(ranks.values()) < 10 and len(set(ranks.values())) == 4
    assert column(epic) == [a.pk, d.pk, c.pk, b.pk]
    # A renumbering publishes epic.changed besides card.changed, so open boards reload the epic.
    Card.objects.filter(pk=b.pk).update(rank=ranks[a.pk])  # two equal ranks force a renumbering
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(project_group(epic.project_id), channel)
    with django_capture_on_commit_callbacks(execute=True):
        services.card_reorder(card=c, actor=CODER, after_id=a.pk)
    frames = [async_to_sync(layer.receive)(channel), async_to_sync(layer.receive)(channel)]
    assert {"type": "card.event", "kind": "card.changed", "card": c.pk} in frames
    assert {"type": "card.event", "kind": "epic.changed", "card": epic.pk} in frames
    ranks = sorted(Card.objects.filter(epic=epic).values_list("rank", flat=True))
    assert len(set(ranks)) == 4


def test_the_api_reorders_for_members_only(
    project: Project, four: list[Card], epic: Epic, member_of: Callable[..., Any], make_user: Callable[..., Any]
) -> None:
    a, b, c, d = four
    member = APIClient()
    member.force_authenticate(member_of(project, ProjectRole.MEMBER))
    answer = member.post(f"/api/cards/{c.pk}/reorder/", {"before": a.pk}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["rank"] < Card.objects.get(pk=a.pk).rank
    assert column(epic) == [c.pk, a.pk, b.pk, d.pk]
    assert member.post(f"/api/cards/{c.pk}/reorder/", {}, format="json").status_code == 400
    services.card_transition(card=d, to_status="in_progress", actor=Actor.for_user(member_of(project)))
    stale = member.post(f"/api/cards/{a.pk}/reorder/", {"after": d.pk}, format="json")
    assert stale.status_code == 409 and stale.json()["code"] == "rank_neighbour_moved"
    viewer = APIClient()
    viewer.force_authenticate(member_of(project, ProjectRole.VIEWER))
    assert viewer.post(f"/api/cards/{a.pk}/reorder/", {"after": b.pk}, format="json").status_code == 403
    stranger = APIClient()
    stranger.force_authenticate(make_user("stranger"))
    assert stranger.post(f"/api/cards/{a.pk}/reorder/", {"after": b.pk}, format="json").status_code == 404
