"""The planning turn's pure parts: propose_plan arguments to an epic document, component folders with
governance on, the complexity gate warning, and the scripted architect's reading of a description."""

from __future__ import annotations

import pytest

from agents.plan_format import (
    MalformedPlan,
    component_of,
    document_from_proposal,
    gate_warnings,
    governance_problems,
)
from agents.scripted_team import description_items


def test_a_proposal_becomes_an_import_document_with_components_as_labels() -> None:
    document = document_from_proposal(
        {"cards": [{"summary": "Store", "seat": "coder", "component": "Accessors/", "depends_on": "2"}, {"name": "B"}]},
        epic_name="Epic",
    )
    first, second = document["cards"]
    assert document["name"] == "Epic"
    assert first["id"] == "1" and first["depends_on"] == ["2"] and component_of(first) == "accessors"
    assert second == {"id": "2", "summary": "B"}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("cards", "must be an object"),
        ({"cards": "everything"}, "not a string"),
        ({"cards": []}, "non-empty list"),
        ({"cards": [1]}, "card 1 is not an object"),
    ],
)
def test_malformed_proposals_are_named(arguments: object, message: str) -> None:
    with pytest.raises(MalformedPlan, match=message):
        document_from_proposal(arguments, epic_name="Epic")


def test_governance_needs_a_recognised_component_on_every_card() -> None:
    document = {
        "cards": [
            {"summary": "A", "labels": ["component:engines"]},
            {"summary": "B", "labels": ["component:misc"]},
            {"summary": "C"},
        ]
    }
    assert governance_problems(document, governance=False) == []
    problems = governance_problems(document, governance=True)
    assert [problem["path"] for problem in problems] == ["cards[1].component", "cards[2].component"]
    assert "'misc' is not a recognised component folder" in problems[0]["message"]


def test_the_complexity_gate_is_a_warning() -> None:
    assert gate_warnings(card_count=7, threshold=7, governance=False) == []
    assert "more than the project's limit of 7" in gate_warnings(card_count=8, threshold=7, governance=False)[0]
    assert gate_warnings(card_count=80, threshold=7, governance=True) == []


def test_the_scripted_architect_reads_bullets_or_else_sentences() -> None:
    assert description_items("Intro.\n\n- one thing\n* another\n3. a third\n") == ["one thing", "another", "a third"]
    assert description_items("Parse the file. Print a summary! Done") == ["Parse the file", "Print a summary!", "Done"]
    assert description_items("") == []
