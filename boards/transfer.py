"""JSON import and export of epics in Orket's format.

    {"name", "description", "team", "environment", "architecture_governance": {"idesign": bool},
     "cards" | "issues" | "stories": [
        {"id", "summary" | "name", "seat", "priority" (number or high/medium/low), "description",
         "requirements", "acceptance_criteria", "depends_on": [summary or id], "labels": [str],
         "note", "verification": {"fixture_path", "scenarios": [...]}}]}

`parse_epic` validates everything first and reports every problem with its JSON path
(`cards[3].priority`); nothing touches the database until the whole document is clean.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from boards import scheduling
from boards.models import PRIORITY_MAX, PRIORITY_MIN, PRIORITY_WORDS, TEXT_MAX, TITLE_MAX

MAX_CARDS = 5_000
MAX_LABELS = 30
LABEL_MAX = 60
SEAT_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]{0,79}$")
SHORT_MAX = 100
FIXTURE_MAX = 500
SCENARIOS_MAX_BYTES = 200_000
CARD_LIST_KEYS = ("cards", "issues", "stories")
EPIC_KEYS = {"name", "description", "team", "environment", "architecture_governance", *CARD_LIST_KEYS}
CARD_KEYS = {
    "id",
    "summary",
    "name",
    "seat",
    "priority",
    "description",
    "requirements",
    "acceptance_criteria",
    "depends_on",
    "labels",
    "note",
    "verification",
}


@dataclass
class ParsedCard:
    local_id: str
    title: str
    seat: str = ""
    priority: float = 2.0
    description: str = ""
    requirements: str = ""
    acceptance_criteria: str = ""
    labels: list[str] = field(default_factory=list)
    note: str = ""
    verification_fixture: str = ""
    verification_scenarios: list[Any] = field(default_factory=list)
    depends_on: list[int] = field(default_factory=list)  # indexes into ParsedEpic.cards


@dataclass
class ParsedEpic:
    name: str
    description: str = ""
    team: str = ""
    environment: str = ""
    architecture_governance: bool = False
    cards: list[ParsedCard] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class ImportProblems(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def text(self, data: dict[str, Any], key: str, path: str, limit: int, *, required: bool = False) -> str:
        value = data.get(key)
        if value is None:
            if required:
                self.add(path, "is required")
            return ""
        if not isinstance(value, str):
            self.add(path, f"must be a string, not {_type_name(value)}")
            return ""
        if len(value) > limit:
            self.add(path, f"is {len(value)} characters long; the limit is {limit}")
            return ""
        if required and not value.strip():
            self.add(path, "must not be empty")
        return value


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def priority_from(value: Any) -> float:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in PRIORITY_WORDS:
            return PRIORITY_WORDS[word]
        raise ValueError(f"unknown priority {value!r}; use high, medium, low or a number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number or high/medium/low, not {_type_name(value)}")
    if not PRIORITY_MIN <= float(value) <= PRIORITY_MAX:
        raise ValueError(f"must lie between {PRIORITY_MIN:g} and {PRIORITY_MAX:g}, not {value}")
    return float(value)


def parse_epic(data: Any) -> ParsedEpic:
    """Validate an epic document; raise ImportProblems listing every problem with its path."""
    check = _Checker()
    if not isinstance(data, dict):
        raise ImportProblems([Problem("$", f"must be an object, not {_type_name(data)}")])
    epic = _epic_fields(check, data)
    list_key, raw_cards = _raw_cards(check, data)
    index = _CardIndex(explicit=_explicit_ids(raw_cards))
    for position, raw in enumerate(raw_cards):
        epic.cards.append(_card(check, raw, list_key, position, index))
    _resolve_dependencies(check, epic, index)
    _refuse_cycle(check, epic, list_key)
    if check.problems:
        raise ImportProblems(check.problems)
    return epic


@dataclass
class _CardIndex:
    """What resolving the cards' dependencies needs: each card by local id and by title, and the
    references (card position, path, reference) read so far."""

    explicit: set[str]
    by_id: dict[str, int] = field(default_factory=dict)
    by_title: dict[str, list[int]] = field(default_factory=dict)
    pending: list[tuple[int, str, Any]] = field(default_factory=list)


def _epic_fields(check: _Checker, data: dict[str, Any]) -> ParsedEpic:
    for key in sorted(set(data) - EPIC_KEYS, key=str):
        check.add(str(key), "is not a field of an epic")
    epic = ParsedEpic(
        name=check.text(data, "name", "name", TITLE_MAX, required=True).strip(),
        description=check.text(data, "description", "description", TEXT_MAX),
        team=check.text(data, "team", "team", SHORT_MAX),
        environment=check.text(data, "environment", "environment", SHORT_MAX),
    )
    governance = data.get("architecture_governance")
    if governance is None:
        return epic
    if isinstance(governance, bool):
        epic.architecture_governance = governance
    elif isinstance(governance, dict):
        for key in sorted(set(governance) - {"idesign"}, key=str):
            check.add(f"architecture_governance.{key}", "is not a known governance setting")
        idesign = governance.get("idesign", False)
        if isinstance(idesign, bool):
            epic.architecture_governance = idesign
        else:
            check.add("architecture_governance.idesign", f"must be true or false, not {_type_name(idesign)}")
    else:
        check.add(
            "architecture_governance", f"must be an object like {{'idesign': true}}, not {_type_name(governance)}"
        )
    return epic


def _raw_cards(check: _Checker, data: dict[str, Any]) -> tuple[str, list[Any]]:
    """The key the cards are listed under, and the list (empty when it is unusable)."""
    present = [key for key in CARD_LIST_KEYS if key in data]
    if len(present) > 1:
        check.add(present[1], f"give the cards in one list only ({' or '.join(CARD_LIST_KEYS)})")
    list_key = present[0] if present else "cards"
    raw_cards = data.get(list_key, [])
    if not isinstance(raw_cards, list):
        check.add(list_key, f"must be a list of cards, not {_type_name(raw_cards)}")
        return list_key, []
    if len(raw_cards) > MAX_CARDS:
        check.add(list_key, f"has {len(raw_cards)} cards; the limit is {MAX_CARDS}")
        return list_key, []
    return list_key, raw_cards


def _explicit_ids(raw_cards: list[Any]) -> set[str]:
    """The ids cards claim; a card's local id is its "id" field, or else its 1-based position when no
    card claims that id."""
    return {
        str(raw["id"])
        for raw in raw_cards
        if isinstance(raw, dict) and isinstance(raw.get("id"), str | int) and not isinstance(raw.get("id"), bool)
    }


def _card(check: _Checker, raw: Any, list_key: str, position: int, index: _CardIndex) -> ParsedCard:
    path = f"{list_key}[{position}]"
    implicit = str(position + 1)
    card = ParsedCard(local_id="" if implicit in index.explicit else implicit, title="")
    if not isinstance(raw, dict):
        check.add(path, f"must be an object, not {_type_name(raw)}")
        return card
    for key in sorted(set(raw) - CARD_KEYS, key=str):
        check.add(f"{path}.{key}", "is not a field of a card")
    _card_identity(check, raw, list_key, position, card, index)
    seat = check.text(raw, "seat", f"{path}.seat", 80)
    if seat and not SEAT_PATTERN.match(seat):
        check.add(
            f"{path}.seat",
            f"{seat!r} is not a seat name: use lower-case letters, digits, '_' or '-', starting with a letter",
        )
    card.seat = seat
    if "priority" in raw:
        try:
            card.priority = priority_from(raw["priority"])
        except ValueError as error:
            check.add(f"{path}.priority", str(error))
    card.description = check.text(raw, "description", f"{path}.description", TEXT_MAX)
    card.requirements = check.text(raw, "requirements", f"{path}.requirements", TEXT_MAX)
    card.acceptance_criteria = check.text(raw, "acceptance_criteria", f"{path}.acceptance_criteria", TEXT_MAX)
    card.note = check.text(raw, "note", f"{path}.note", TEXT_MAX)
    card.labels = _labels(check, raw.get("labels", []), f"{path}.labels")
    _card_verification(check, raw.get("verification"), f"{path}.verification", card)
    depends_on = raw.get("depends_on", [])
    if not isinstance(depends_on, list):
        check.add(f"{path}.depends_on", f"must be a list of card ids or summaries, not {_type_name(depends_on)}")
    else:
        for reference_position, reference in enumerate(depends_on):
            index.pending.append((position, f"{path}.depends_on[{reference_position}]", reference))
    return card


def _card_identity(
    check: _Checker, raw: dict[str, Any], list_key: str, position: int, card: ParsedCard, index: _CardIndex
) -> None:
    """The card's title and local id, recorded in the index that dependencies are resolved with."""
    path = f"{list_key}[{position}]"
    title_key = "summary" if "summary" in raw or "name" not in raw else "name"
    if "summary" in raw and "name" in raw:
        check.add(f"{path}.name", "give either summary or name, not both")
    card.title = check.text(raw, title_key, f"{path}.{title_key}", TITLE_MAX, required=True).strip()
    if "id" in raw:
        local = raw["id"]
        if isinstance(local, bool) or not isinstance(local, str | int) or str(local).strip() == "":
            check.add(f"{path}.id", f"must be a non-empty string or a number, not {_type_name(local)}")
        elif str(local) in index.by_id and index.by_id[str(local)] != position:
            check.add(f"{path}.id", f"repeats the id {local!r} of {list_key}[{index.by_id[str(local)]}]")
        else:
            card.local_id = str(local)
    if card.local_id:
        index.by_id.setdefault(card.local_id, position)
    if card.title:
        index.by_title.setdefault(card.title, []).append(position)


def _labels(check: _Checker, labels: Any, path: str) -> list[str]:
    if not isinstance(labels, list):
        check.add(path, f"must be a list of strings, not {_type_name(labels)}")
        return []
    if len(labels) > MAX_LABELS:
        check.add(path, f"has {len(labels)} labels; the limit is {MAX_LABELS}")
        return []
    kept: list[str] = []
    for position, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            check.add(f"{path}[{position}]", "must be a non-empty string")
        elif len(label) > LABEL_MAX:
            check.add(f"{path}[{position}]", f"is longer than {LABEL_MAX} characters")
        else:
            kept.append(label.strip())
    return kept


def _card_verification(check: _Checker, verification: Any, path: str, card: ParsedCard) -> None:
    if verification is None:
        return
    if not isinstance(verification, dict):
        check.add(path, f"must be an object, not {_type_name(verification)}")
        return
    for key in sorted(set(verification) - {"fixture_path", "scenarios"}, key=str):
        check.add(f"{path}.{key}", "is not a field of verification")
    card.verification_fixture = check.text(verification, "fixture_path", f"{path}.fixture_path", FIXTURE_MAX)
    scenarios = verification.get("scenarios", [])
    if not isinstance(scenarios, list):
        check.add(f"{path}.scenarios", f"must be a list, not {_type_name(scenarios)}")
    elif len(json.dumps(scenarios)) > SCENARIOS_MAX_BYTES:
        check.add(f"{path}.scenarios", f"is larger than {SCENARIOS_MAX_BYTES} bytes")
    else:
        card.verification_scenarios = scenarios


def _resolve_dependencies(check: _Checker, epic: ParsedEpic, index: _CardIndex) -> None:
    """Each reference names a card of the epic by local id or (unique) title."""
    for position, path, reference in index.pending:
        if isinstance(reference, bool) or not isinstance(reference, str | int):
            check.add(path, f"must be a card id or summary, not {_type_name(reference)}")
            continue
        key = str(reference)
        if key in index.by_id:
            target = index.by_id[key]
        elif key in index.by_title:
            if len(index.by_title[key]) > 1:
                check.add(path, f"{key!r} matches {len(index.by_title[key])} cards by summary; refer to it by id")
                continue
            target = index.by_title[key][0]
        else:
            check.add(path, f"no card in this epic has the id or summary {key!r}")
            continue
        if target == position:
            check.add(path, "a card cannot depend on itself")
        elif target not in epic.cards[position].depends_on:
            epic.cards[position].depends_on.append(target)


def _refuse_cycle(check: _Checker, epic: ParsedEpic, list_key: str) -> None:
    edges = [(position, target) for position, card in enumerate(epic.cards) for target in card.depends_on]
    cycle = scheduling.find_cycle(edges)
    if cycle:
        names = " -> ".join(repr(epic.cards[step].title or epic.cards[step].local_id) for step in cycle)
        check.add(f"{list_key}[{cycle[0]}].depends_on", f"dependencies form a cycle: {names}")


def parse_epic_for_team(data: Any, *, known_seats: Collection[str] | None = None) -> ParsedEpic:
    """`parse_epic`, and every card's seat must be one of `known_seats` (when given)."""
    problems: list[Problem] = []
    try:
        parsed: ParsedEpic | None = parse_epic(data)
    except ImportProblems as error:
        parsed, problems = None, list(error.problems)
    if known_seats is not None and isinstance(data, dict):
        list_key = next((key for key in CARD_LIST_KEYS if key in data), "cards")
        cards = data.get(list_key)
        seats = ", ".join(sorted(known_seats)) or "none"
        for index, raw in enumerate(cards if isinstance(cards, list) else []):
            seat = raw.get("seat") if isinstance(raw, dict) else None
            if isinstance(seat, str) and seat and seat not in known_seats:
                problems.append(
                    Problem(f"{list_key}[{index}].seat", f"no seat {seat!r} in the team; use one of {seats}")
                )
    if problems or parsed is None:
        raise ImportProblems(problems)
    return parsed


def export_epic(epic: Any, cards: list[Any], dependencies: list[tuple[int, int]]) -> dict[str, Any]:
    """The epic as a document `parse_epic` accepts; cards in rank order with local ids 1..n."""
    local = {card.pk: str(position + 1) for position, card in enumerate(cards)}
    needs: dict[int, list[str]] = {}
    for card_id, depends_on in dependencies:
        if depends_on in local:
            needs.setdefault(card_id, []).append(local[depends_on])
    return {
        "name": epic.name,
        "description": epic.description,
        "team": epic.team,
        "environment": epic.environment,
        "architecture_governance": {"idesign": epic.architecture_governance},
        "cards": [
            {
                "id": local[card.pk],
                "summary": card.title,
                "seat": card.seat,
                "priority": card.priority,
                "description": card.description,
                "requirements": card.requirements,
                "acceptance_criteria": card.acceptance_criteria,
                "depends_on": sorted(needs.get(card.pk, []), key=int),
                "labels": list(card.labels),
                "note": card.note,
                "verification": {
                    "fixture_path": card.verification_fixture,
                    "scenarios": card.verification_scenarios,
                },
            }
            for card in cards
        ],
    }
