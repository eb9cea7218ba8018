"""card_record_verification: the latest verification result on the card, and what it means for done."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from boards import services
from boards.actors import Actor
from boards.errors import InvalidInput
from boards.models import Card, CardHistory, HistoryEvent
from boards.services import TransitionRefused
from tests.boards.conftest import CODER, GUARD

VERIFIER = Actor.orket("verification")


def _to_review(card: Card) -> None:
    services.card_transition(card=card, to_status="in_progress", actor=CODER)
    services.card_transition(card=card, to_status="code_review", actor=CODER)


def test_failed_blocks_done_and_passed_lets_it_through(make_card: Callable[..., Card]) -> None:
    card = make_card("Parser")
    _to_review(card)
    services.card_record_verification(card=card, result="failed", actor=VERIFIER, reason="verification 1: 1 failed")
    with pytest.raises(TransitionRefused) as refused:
        services.card_transition(card=card, to_status="done", actor=GUARD)
    assert refused.value.code == "verification_failed"
    assert Card.objects.get(pk=card.pk).status == "code_review"

    services.card_record_verification(card=card, result="passed", actor=VERIFIER)
    services.card_transition(card=card, to_status="done", actor=GUARD)
    assert Card.objects.get(pk=card.pk).status == "done"
    row = CardHistory.objects.filter(card=card, event=HistoryEvent.EDITED).order_by("id").first()
    assert row is not None
    assert row.changes == {"last_verification": ["", "failed"]}
    assert row.actor_seat == "verification" and row.reason == "verification 1: 1 failed"


def test_only_passed_or_failed(make_card: Callable[..., Card]) -> None:
    card = make_card()
    with pytest.raises(InvalidInput) as error:
        services.card_record_verification(card=card, result="timed_out", actor=VERIFIER)
    assert error.value.code == "bad_verification_result"
    assert Card.objects.get(pk=card.pk).last_verification == ""
