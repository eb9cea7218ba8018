"""Two workers asking for the same change at once: the row lock lets exactly one through."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from boards import services
from boards.actors import Actor
from boards.models import Card, CardHistory, HistoryEvent
from boards.services import TransitionRefused


@pytest.mark.django_db(transaction=True)
def test_same_transition_twice_at_once(make_card: Callable[..., Card]) -> None:
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        # The in-memory test database uses a shared cache with table locks and no busy timeout;
        # the embedded file database (WAL, BEGIN IMMEDIATE, 20 s timeout) queues writers instead.
        pytest.skip("needs a database with row locks or a busy timeout; run with ORKET_TEST_DATABASE_URL")
    card = make_card()
    services.card_transition(card=card, to_status="in_progress", actor=Actor.for_seat("coder"))
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def attempt(seat: str) -> None:
        try:
            barrier.wait()
            services.card_transition(
                card=Card.objects.get(pk=card.pk), to_status="code_review", actor=Actor.for_seat(seat)
            )
            outcomes.append("moved")
        except TransitionRefused as refused:
            outcomes.append(refused.code)
        except Exception as error:  # recorded so the assertion below shows it
            outcomes.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(f"coder_{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["illegal_transition"] * 3 + ["moved"], outcomes
    rows = CardHistory.objects.filter(card=card, event=HistoryEvent.TRANSITION, to_status="code_review")
    assert rows.count() == 1
    assert Card.objects.get(pk=card.pk).status == "code_review"


@pytest.mark.slow
def test_same_transition_twice_at_once_on_embedded_sqlite() -> None:
    """The embedded default: a SQLite file in WAL mode whose transactions BEGIN IMMEDIATE."""
    script = Path(__file__).with_name("sqlite_race.py")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"outcomes": ["illegal_transition"] * 3 + ["moved"], "rows": 1}, report
