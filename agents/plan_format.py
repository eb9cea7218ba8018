"""The planning turn's words and shapes, pure (no Django): the prompt that asks the architect for a plan,
the `propose_plan` tool, and the conversion of its cards into an epic document in Orket's import format
(boards.transfer), which is what the draft page edits and what Accept imports.

    {"cards": [{"id", "summary", "description", "requirements", "acceptance_criteria", "seat",
                "priority", "depends_on": [ids or summaries of other planned cards], "component"}]}

`component` (the recognised component folder the card's code belongs in) is kept as the label
`component:<folder>`; with architecture governance on every card needs one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from boards.governance import COMPONENT_FOLDERS, epic_may_run

PLAN_TOOL = "propose_plan"
READ_TOOLS = ("read_file", "list_directory", "search_code")
MAX_PLAN_CARDS = 200
COMPONENT_LABEL = "component:"
DESCRIPTION_OPEN = "<<<EPIC-DESCRIPTION"
DESCRIPTION_CLOSE = "EPIC-DESCRIPTION>>>"
CARD_FIELDS = ("summary", "description", "requirements", "acceptance_criteria", "seat", "priority", "depends_on")

PLAN_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "cards": {
            "type": "array",
            "description": "The cards of the epic, in the order they should be worked.",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "A short id other cards use in depends_on."},
                    "summary": {"type": "string", "description": "The card's title, one line."},
                    "description": {"type": "string"},
                    "requirements": {"type": "string"},
                    "acceptance_criteria": {"type": "string"},
                    "seat": {"type": "string", "description": "The team seat that works the card."},
                    "priority": {"type": "string", "enum": ["high", "medium", "low"]},
                    "depends_on": {"type": "array", "items": {"type": "string"}},
                    "component": {"type": "string", "description": "Component folder (governance on)."},
                },
                "required": ["summary", "seat"],
            },
        }
    },
    "required": ["cards"],
}


def plan_tool_spec() -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": PLAN_TOOL,
            "description": "Propose the epic's cards. A person reviews the plan before any card is created.",
            "parameters": PLAN_TOOL_SCHEMA,
        },
    }


def planning_messages(
    *,
    epic_id: int,
    epic_name: str,
    description: str,
    seat: str,
    seats: Sequence[str],
    seat_roles: Sequence[tuple[str, str]] = (),
    existing_cards: Sequence[str],
    governance: bool,
    threshold: int,
    guidance: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The first two messages of a planning turn; the ORKET-* markers are what the scripted team reads."""
    folders = ", ".join(sorted(COMPONENT_FOLDERS))
    system = "\n".join(
        [
            "ORKET-PURPOSE: plan",
            "ORKET-ROLE: architect",
            f"ORKET-SEAT: {seat}",
            f"ORKET-SEATS: {','.join(seats)}",
            f"ORKET-SEAT-ROLES: {','.join(f'{name}={role}' for name, role in seat_roles)}",
            f"ORKET-GOVERNANCE: {'on' if governance else 'off'}",
            "You are the architect of a software team. Plan the epic below as cards a team can build and",
            "verify one by one. You may read the project's source repository first with read_file,",
            "list_directory and search_code. Then answer with exactly one call of propose_plan(cards=[...]).",
            "Each card: id (short, unique), summary (one line), description, requirements,",
            "acceptance_criteria, seat (one of: " + ", ".join(seats) + "), priority (high, medium or low),",
            "depends_on (ids of other cards in this plan that must be done first; no cycles).",
            (
                f"Architecture governance is on: give every card a component, one of: {folders}."
                if governance
                else "Keep the plan small: an epic with more than "
                f"{threshold} cards needs architecture governance to run."
            ),
            'Write a call as a JSON object {"tool": "<name>", "args": {...}} in a ```json block, or use the',
            "tool-calling interface. A person reviews and edits the plan before any card is created.",
            *guidance,
        ]
    )
    existing = "\n".join(f"- {title}" for title in existing_cards) or "none"
    user = "\n".join(
        [
            f"ORKET-EPIC: {epic_id}",
            f"ORKET-EPIC-NAME: {epic_name}",
            f"Epic: {epic_name}",
            "Epic description:",
            DESCRIPTION_OPEN,
            description.strip(),
            DESCRIPTION_CLOSE,
            f"Cards the epic already has (do not plan them again): {existing}",
        ]
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


class MalformedPlan(ValueError):
    """The propose_plan arguments are not a list of card objects at all."""


def document_from_proposal(arguments: Any, *, epic_name: str) -> dict[str, Any]:
    """The epic document of a propose_plan call; MalformedPlan when it holds no list of card objects.
    Field problems (a bad priority, a missing summary) are left for the import validation to name."""
    if not isinstance(arguments, dict):
        raise MalformedPlan("the propose_plan arguments must be an object with a list of cards")
    cards = arguments.get("cards")
    if isinstance(cards, str):
        raise MalformedPlan("cards must be a list of card objects, not a string")
    if not isinstance(cards, list) or not cards:
        raise MalformedPlan("cards must be a non-empty list of card objects")
    if len(cards) > MAX_PLAN_CARDS:
        raise MalformedPlan(f"the plan has {len(cards)} cards; at most {MAX_PLAN_CARDS} are accepted")
    bad = [index for index, card in enumerate(cards) if not isinstance(card, dict)]
    if bad:
        raise MalformedPlan(f"card {bad[0] + 1} is not an object with a summary and a seat")
    return {"name": epic_name, "cards": [_card(index, card) for index, card in enumerate(cards)]}


def _card(index: int, raw: dict[str, Any]) -> dict[str, Any]:
    card: dict[str, Any] = {"id": str(raw.get("id") or index + 1)}
    summary = raw.get("summary", raw.get("name", raw.get("title")))
    card["summary"] = summary if summary is not None else ""
    for name in CARD_FIELDS[1:]:
        if name in raw:
            card[name] = raw[name]
    if isinstance(card.get("depends_on"), str):
        card["depends_on"] = [card["depends_on"]]
    labels = raw.get("labels") if isinstance(raw.get("labels"), list) else []
    component = raw.get("component")
    if isinstance(component, str) and component.strip():
        labels = [*labels, COMPONENT_LABEL + component.strip().strip("/").lower()]
    if labels:
        card["labels"] = labels
    return card


def component_of(card: dict[str, Any]) -> str:
    labels = card.get("labels") if isinstance(card.get("labels"), list) else []
    return next((str(label)[len(COMPONENT_LABEL) :] for label in labels if str(label).startswith(COMPONENT_LABEL)), "")


def governance_problems(document: dict[str, Any], *, governance: bool) -> list[dict[str, str]]:
    """With governance on every card names a recognised component folder."""
    if not governance:
        return []
    problems = []
    cards = document.get("cards") if isinstance(document.get("cards"), list) else []
    folders = ", ".join(sorted(COMPONENT_FOLDERS))
    for index, card in enumerate(cards):
        if not isinstance(card, dict):
            continue
        component = component_of(card)
        if component not in COMPONENT_FOLDERS:
            message = (
                f"{component!r} is not a recognised component folder; use one of {folders}"
                if component
                else f"architecture governance is on: name the card's component folder ({folders})"
            )
            problems.append({"path": f"cards[{index}].component", "message": message})
    return problems


def gate_warnings(*, card_count: int, threshold: int, governance: bool) -> list[str]:
    """The complexity gate, as a warning on the draft: the run would be refused."""
    decision = epic_may_run(card_count=card_count, threshold=threshold, architecture_governance=governance)
    return [] if decision.allowed else [decision.reason]
