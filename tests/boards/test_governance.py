"""The complexity gate and the workspace path policy (pure), plus the gate selector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from boards import selectors
from boards.governance import check_workspace_path, epic_may_run, path_in_component
from boards.models import Card, Epic


def test_complexity_gate() -> None:
    assert epic_may_run(card_count=7, threshold=7, architecture_governance=False).allowed
    refused = epic_may_run(card_count=8, threshold=7, architecture_governance=False)
    assert (refused.allowed, refused.code) == (False, "complexity_gate")
    assert "8 cards" in refused.reason
    assert epic_may_run(card_count=8, threshold=7, architecture_governance=True).allowed


@pytest.mark.parametrize(
    "path",
    [
        "services/billing.py",
        "src/managers/order_manager.py",
        "tests/test_x.py",
        "./app/Models/user.py",
        "a/utils/b/c.py",
    ],
)
def test_paths_under_components_are_allowed(path: str) -> None:
    assert path_in_component(path)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("", "path_empty"),
        ("/etc/services/passwd", "path_absolute"),
        ("C:/services/x.py", "path_absolute"),
        ("services/../../etc/passwd", "path_escape"),
        ("../services/x.py", "path_escape"),
        ("services\\x.py", "path_invalid"),
        ("main.py", "path_outside_components"),
        ("src/app/main.py", "path_outside_components"),
        ("services", "path_outside_components"),
        ("servicesx/a.py", "path_outside_components"),
    ],
)
def test_paths_refused(path: str, code: str) -> None:
    decision = check_workspace_path(path)
    assert (decision.allowed, decision.code) == (False, code)
    assert decision.reason


def test_gate_selector(epic: Epic, make_card: Callable[..., Card], maintainer: Any) -> None:
    for n in range(8):
        make_card(f"c{n}")
    assert selectors.epic_run_gate(epic).code == "complexity_gate"
    epic.project.complexity_threshold = 8
    epic.project.save()
    assert selectors.epic_run_gate(epic).allowed
    epic.project.complexity_threshold = 7
    epic.project.save()
    epic.architecture_governance = True
    epic.save()
    assert selectors.epic_run_gate(epic).allowed
