"""Orket's JSON format for teams and roles: parsing with every problem named by its JSON path.

Pure: no Django. The service layer checks names against the database and writes.

    {"name": "standard", "description": "...",
     "roles": [{"name": "coder", "intent": "...", "responsibilities": [...], "constraints": [...],
                "tools": ["read_file", ...], "can_finalize": false, "is_project_manager": false}],
     "seats": [{"name": "senior_developer", "roles": ["coder"], "model_profile": "ollama-local"}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.catalog import is_slug_name, unknown_tools

MAX_TEXT = 4000
MAX_ITEMS = 100
FORMAT_VERSION = 1


@dataclass
class RoleSpec:
    name: str
    intent: str
    responsibilities: list[str]
    constraints: list[str]
    tools: list[str]
    can_finalize: bool
    is_project_manager: bool


@dataclass
class SeatSpec:
    name: str
    roles: list[str]
    model_profile: str | None


@dataclass
class TeamSpec:
    name: str
    description: str
    roles: list[RoleSpec] = field(default_factory=list)
    seats: list[SeatSpec] = field(default_factory=list)


class Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append({"path": path, "message": message})

    def __bool__(self) -> bool:
        return bool(self.items)


def _name(value: Any, path: str, problems: Problems) -> str:
    if not isinstance(value, str) or not is_slug_name(value):
        problems.add(path, "must be a name of lowercase letters, digits, '_' or '-', starting with a letter")
        return ""
    return value


def _text(value: Any, path: str, problems: Problems, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        problems.add(path, "must be a string")
        return ""
    if required and not value.strip():
        problems.add(path, "must not be empty")
    if len(value) > MAX_TEXT:
        problems.add(path, f"is longer than {MAX_TEXT} characters")
    return value


def _text_list(value: Any, path: str, problems: Problems) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(path, "must be a list of strings")
        return []
    if len(value) > MAX_ITEMS:
        problems.add(path, f"has more than {MAX_ITEMS} items")
    return [_text(item, f"{path}[{index}]", problems, required=True) for index, item in enumerate(value)]


def _flag(value: Any, path: str, problems: Problems) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        problems.add(path, "must be true or false")
        return False
    return value


def parse_role(raw: Any, path: str, problems: Problems) -> RoleSpec | None:
    if not isinstance(raw, dict):
        problems.add(path, "must be an object")
        return None
    tools = _text_list(raw.get("tools", raw.get("allowed_tools")), f"{path}.tools", problems)
    for tool in unknown_tools(tools):
        problems.add(f"{path}.tools", f"unknown tool {tool!r}")
    return RoleSpec(
        name=_name(raw.get("name"), f"{path}.name", problems),
        intent=_text(raw.get("intent"), f"{path}.intent", problems, required=True),
        responsibilities=_text_list(raw.get("responsibilities"), f"{path}.responsibilities", problems),
        constraints=_text_list(raw.get("constraints"), f"{path}.constraints", problems),
        tools=tools,
        can_finalize=_flag(raw.get("can_finalize"), f"{path}.can_finalize", problems),
        is_project_manager=_flag(raw.get("is_project_manager"), f"{path}.is_project_manager", problems),
    )


def _parse_seat(raw: Any, path: str, problems: Problems) -> SeatSpec | None:
    if not isinstance(raw, dict):
        problems.add(path, "must be an object")
        return None
    roles_raw = raw.get("roles")
    if not isinstance(roles_raw, list) or not roles_raw:
        problems.add(f"{path}.roles", "must be a non-empty list of role names")
        roles_raw = []
    profile = raw.get("model_profile")
    if profile is not None:
        profile = _name(profile, f"{path}.model_profile", problems) or None
    return SeatSpec(
        name=_name(raw.get("name"), f"{path}.name", problems),
        roles=[_name(role, f"{path}.roles[{index}]", problems) for index, role in enumerate(roles_raw)],
        model_profile=profile,
    )


def _duplicates(names: list[str]) -> set[str]:
    seen: set[str] = set()
    return {name for name in names if name and (name in seen or seen.add(name))}


def parse_team(document: Any) -> tuple[TeamSpec | None, list[dict[str, str]]]:
    """Parse a team document; return the spec and an empty list, or None and every problem found."""
    problems = Problems()
    if not isinstance(document, dict):
        problems.add("$", "must be a JSON object")
        return None, problems.items
    team = TeamSpec(
        name=_name(document.get("name"), "name", problems),
        description=_text(document.get("description"), "description", problems),
    )
    for key, parser, target in (("roles", parse_role, team.roles), ("seats", _parse_seat, team.seats)):
        raw_items = document.get(key, [])
        if not isinstance(raw_items, list):
            problems.add(key, "must be a list")
            continue
        if len(raw_items) > MAX_ITEMS:
            problems.add(key, f"has more than {MAX_ITEMS} items")
        for index, raw in enumerate(raw_items[:MAX_ITEMS]):
            spec = parser(raw, f"{key}[{index}]", problems)
            if spec is not None:
                target.append(spec)
    if not team.seats and "seats" not in [item["path"] for item in problems.items]:
        problems.add("seats", "a team needs at least one seat")
    for name in _duplicates([role.name for role in team.roles]):
        problems.add("roles", f"role {name!r} is defined twice")
    for name in _duplicates([seat.name for seat in team.seats]):
        problems.add("seats", f"seat {name!r} is defined twice")
    if problems:
        return None, problems.items
    return team, []
