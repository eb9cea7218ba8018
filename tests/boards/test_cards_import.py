"""boards.services.epic_cards_import: cards added to an existing epic all at once or not at all, seats
checked against the team, archived epics refused; and epic_archive / project_archive."""

from __future__ import annotations

from typing import Any

import pytest

from boards import services
from boards.actors import Actor
from boards.errors import IllegalState
from boards.models import Card, CardDependency, CardHistory, Epic, Project
from boards.services import ImportInvalid

pytestmark = pytest.mark.django_db

SEATS = {"coder", "architect"}


def _document(*cards: dict[str, Any]) -> dict[str, Any]:
    return {"cards": list(cards)}


def test_cards_are_added_after_the_existing_ones_with_their_dependencies(epic: Epic, maintainer: Any) -> None:
    actor = Actor.for_user(maintainer)
    services.card_create(epic=epic, actor=actor, title="Already there")
    cards = services.epic_cards_import(
        epic=epic,
        data=_document(
            {"id": "a", "summary": "First", "seat": "architect"},
            {"id": "b", "summary": "Second", "seat": "coder", "depends_on": ["a"]},
        ),
        actor=actor,
        known_seats=SEATS,
        reason="planned",
    )
    titles = list(Card.objects.filter(epic=epic).order_by("rank").values_list("title", flat=True))
    assert titles == ["Already there", "First", "Second"]
    assert list(CardDependency.objects.filter(card=cards[1]).values_list("depends_on_id", flat=True)) == [cards[0].pk]
    assert CardHistory.objects.filter(card__in=cards, reason="planned").count() == 2


def test_unknown_seats_and_cycles_add_nothing(epic: Epic, maintainer: Any) -> None:
    actor = Actor.for_user(maintainer)
    with pytest.raises(ImportInvalid) as unknown:
        services.epic_cards_import(
            epic=epic, data=_document({"summary": "A", "seat": "tester"}), actor=actor, known_seats=SEATS
        )
    assert unknown.value.extra["errors"][0]["path"] == "cards[0].seat"
    with pytest.raises(ImportInvalid, match="cycle: 'A' -> 'B' -> 'A'"):
        services.epic_cards_import(
            epic=epic,
            data=_document({"summary": "A", "depends_on": ["B"]}, {"summary": "B", "depends_on": ["A"]}),
            actor=actor,
        )
    assert Card.objects.filter(epic=epic).count() == 0


def test_archived_epics_take_no_cards_and_archiving_is_recorded(project: Project, epic: Epic, maintainer: Any) -> None:
    actor = Actor.for_user(maintainer)
    services.epic_archive(epic=epic, actor=actor, archived=True)
    with pytest.raises(IllegalState):
        services.epic_cards_import(epic=epic, data=_document({"summary": "A"}), actor=actor)
    assert CardHistory.objects.filter(epic=epic, changes={"archived": [False, True]}).count() == 1
    restored = services.epic_archive(epic=epic, actor=actor, archived=False)
    assert restored.archived_at is None
    archived = services.project_archive(project=project, archived=True)
    assert archived.archived_at is not None
