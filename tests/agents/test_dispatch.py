"""Every hand-off in agents.dispatch has its Celery task connected once Django has started."""

from __future__ import annotations

import pytest

from agents import dispatch


def test_every_handoff_has_its_task() -> None:
    handoffs = [value for value in vars(dispatch).values() if isinstance(value, dispatch.Handoff)]

    assert handoffs
    for handoff in handoffs:
        assert handoff.task is not None, handoff.name
        assert handoff.task.name == f"agents.{handoff.name}"


def test_a_handoff_without_a_task_refuses() -> None:
    with pytest.raises(RuntimeError, match="no_task_yet"):
        dispatch.Handoff("no_task_yet").after_commit(1)
