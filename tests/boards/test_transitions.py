"""Every (type, from, to) pair through card_transition on the real database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from boards import machine, services
from boards.actors import Actor
from boards.errors import Forbidden, NotFound
from boards.models import Card, CardHistory, Epic, HistoryEvent, Project, ProjectRole, Rock
from boards.services import TransitionRefused
from tests.boards.conftest import CODER, GUARD

PAIRS = [
    (kind, source, target)
    for kind in machine.ITEM_TYPES
    for source in machine.statuses_for(kind)
    for target in machine.STATUSES
]


def _item(kind: str, status: str, project: Project, maintainer: Any) -> Card | Epic | Rock:
    actor = Actor.for_user(maintainer)
    if kind == "rock":
        item: Card | Epic | Rock = services.rock_create(project=project, actor=actor, name="Q3")
    elif kind == "epic":
        item = services.epic_create(project=project, actor=actor, name="Epic")
    else:
        epic = services.epic_create(project=project, actor=actor, name="Epic")
        item = services.card_create(epic=epic, actor=actor, title="Card", last_verification="passed")
        wait = "resource" if status in machine.WAITING_STATUSES else ""
        Card.objects.filter(pk=item.pk).update(status=status, wait_reason=wait, last_worked_by_seat="coder")
        item.refresh_from_db()
        return item
    type(item).objects.filter(pk=item.pk).update(status=status)
    item.refresh_from_db()
    return item


def _snapshot(item: Card | Epic | Rock) -> dict[str, Any]:
    return dict(type(item).objects.filter(pk=item.pk).values().get())


@pytest.mark.parametrize(("kind", "source", "target"), PAIRS)
def test_every_pair(kind: str, source: str, target: str, project: Project, maintainer: Any) -> None:
    item = _item(kind, source, project, maintainer)
    before = _snapshot(item)
    history_before = CardHistory.objects.filter(event=HistoryEvent.TRANSITION).count()
    wait = "dependency" if target in machine.WAITING_STATUSES else ""
    if target in machine.allowed_targets(kind, source):
        services.card_transition(card=item, to_status=target, actor=GUARD, wait_reason=wait, reason="because")
        item.refresh_from_db()
        assert item.status == target
        subject = {"issue": "card"}.get(kind, kind)
        rows = list(CardHistory.objects.filter(event=HistoryEvent.TRANSITION, **{subject: item}))
        assert [(r.from_status, r.to_status, r.reason, r.actor_seat) for r in rows] == [
            (source, target, "because", "integrity_guard")
        ]
        assert rows[0].actor_roles == ["integrity_guard", "project_manager", "finalizer"]
        if kind == "issue":
            assert item.wait_reason == wait
    else:
        with pytest.raises(TransitionRefused) as caught:
            services.card_transition(card=item, to_status=target, actor=GUARD, wait_reason=wait)
        assert caught.value.code == "illegal_transition"
        assert caught.value.status == 409
        assert _snapshot(item) == before
        assert CardHistory.objects.filter(event=HistoryEvent.TRANSITION).count() == history_before


def _refused(item: Card | Epic | Rock, code: str, **kwargs: Any) -> None:
    before = _snapshot(item)
    history = CardHistory.objects.count()
    with pytest.raises(TransitionRefused) as caught:
        services.card_transition(card=item, **kwargs)
    assert caught.value.code == code, caught.value.message
    assert _snapshot(item) == before
    assert CardHistory.objects.count() == history


def test_rules_on_the_database(project: Project, maintainer: Any, member_of: Callable[..., Any]) -> None:
    card = _item("issue", "in_progress", project, maintainer)
    member = Actor.for_user(member_of(project, ProjectRole.MEMBER))
    _refused(card, "wait_reason_required", to_status="blocked", actor=member)
    services.card_transition(card=card, to_status="blocked", actor=member, wait_reason="input")
    assert Card.objects.get(pk=card.pk).wait_reason == "input"
    services.card_transition(card=card, to_status="in_progress", actor=CODER)
    card.refresh_from_db()
    assert (card.wait_reason, card.last_worked_by_seat) == ("", "coder")
    services.card_transition(card=card, to_status="code_review", actor=CODER)
    _refused(card, "role_forbidden", to_status="done", actor=CODER)
    _refused(card, "role_forbidden", to_status="done", actor=member)
    Card.objects.filter(pk=card.pk).update(last_worked_by_seat="integrity_guard")
    _refused(card, "same_seat", to_status="done", actor=GUARD)
    Card.objects.filter(pk=card.pk).update(last_worked_by_seat="coder", last_verification="failed")
    _refused(card, "verification_failed", to_status="done", actor=GUARD)
    Card.objects.filter(pk=card.pk).update(last_verification="passed")
    services.card_transition(card=card, to_status="done", actor=GUARD)
    assert Card.objects.get(pk=card.pk).status == "done"


def test_cancel_needs_maintainer(project: Project, maintainer: Any, member_of: Callable[..., Any]) -> None:
    card = _item("issue", "ready", project, maintainer)
    _refused(card, "cancel_forbidden", to_status="canceled", actor=Actor.for_user(member_of(project, "member")))
    _refused(card, "cancel_forbidden", to_status="canceled", actor=CODER)
    services.card_transition(card=card, to_status="canceled", actor=Actor.for_user(maintainer))
    pm_card = _item("issue", "ready", project, maintainer)
    services.card_transition(card=pm_card, to_status="canceled", actor=Actor.for_seat("pm", ["project-manager"]))
    assert Card.objects.filter(status="canceled").count() == 2


def test_people_need_membership(
    project: Project, maintainer: Any, member_of: Callable[..., Any], make_user: Any
) -> None:
    card = _item("issue", "ready", project, maintainer)
    with pytest.raises(Forbidden):
        services.card_transition(card=card, to_status="in_progress", actor=Actor.for_user(member_of(project, "viewer")))
    with pytest.raises(NotFound):
        services.card_transition(card=card, to_status="in_progress", actor=Actor.for_user(make_user("stranger")))
    assert Card.objects.get(pk=card.pk).status == "ready"
    assert not CardHistory.objects.filter(event=HistoryEvent.TRANSITION).exists()


def test_epic_roll_up(project: Project, maintainer: Any, make_card: Callable[..., Card], epic: Epic) -> None:
    rock = services.rock_create(project=project, actor=Actor.for_user(maintainer), name="Q3")
    services.epic_update(epic=epic, actor=Actor.for_user(maintainer), rock=rock)
    first, second = make_card("one"), make_card("two")
    services.card_transition(card=first, to_status="in_progress", actor=CODER)
    epic.refresh_from_db()
    rock.refresh_from_db()
    assert epic.status == rock.status == "in_progress"
    rows = CardHistory.objects.filter(epic=epic, event=HistoryEvent.TRANSITION)
    assert [(r.from_status, r.to_status, r.actor_seat) for r in rows] == [("ready", "in_progress", "roll-up")]
    # The epic may not finish while a card is open; canceled and done cards count as finished.
    _refused(epic, "children_unfinished", to_status="done", actor=GUARD)
    services.card_transition(card=second, to_status="canceled", actor=GUARD)
    for step in ("code_review", "done"):
        services.card_transition(card=first, to_status=step, actor=GUARD if step == "done" else CODER)
    _refused(rock, "children_unfinished", to_status="done", actor=GUARD)
    services.card_transition(card=epic, to_status="done", actor=Actor.for_user(maintainer))
    services.card_transition(card=rock, to_status="done", actor=Actor.for_user(maintainer))
    rock.refresh_from_db()
    assert rock.status == "done"
    # A second card starting in a running epic writes no extra roll-up row.
    assert CardHistory.objects.filter(epic=epic, actor_seat="roll-up").count() == 1


def test_database_constraints(epic: Epic, make_card: Callable[..., Card]) -> None:
    card = make_card()
    for bad in (
        {"status": "blocked", "wait_reason": ""},
        {"status": "ready", "wait_reason": "input"},
        {"status": "blocked", "wait_reason": "nap"},
        {"status": "flying"},
        {"priority": 11.0},
        {"last_verification": "maybe"},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            Card.objects.filter(pk=card.pk).update(**bad)
    with pytest.raises(IntegrityError), transaction.atomic():
        from boards.models import CardDependency

        CardDependency.objects.create(card=card, depends_on=card)


def test_history_is_append_only(epic: Epic, make_card: Callable[..., Card]) -> None:
    from boards.models import AppendOnlyError

    make_card()
    row = CardHistory.objects.first()
    assert row is not None
    row.reason = "rewritten"
    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.delete()
    assert CardHistory.objects.get(pk=row.pk).reason == ""
