"""Names Orket's agents can use: the tools and the providers. Pure, no Django."""

from __future__ import annotations

import re

TOOL_NAMES: tuple[str, ...] = (
    "read_file",
    "write_file",
    "list_directory",
    "delete_file",
    "get_card_context",
    "add_comment",
    "update_card_status",
    "create_card",
    "add_note",
    "run_verification",
    "search_code",
    "edit_file",
    "git_diff",
    "finish_turn",
    "run_command",
    "run_tests",
)

PROVIDERS: tuple[str, ...] = ("ollama", "openai", "scripted")

OUTPUT_FORMATS: tuple[str, ...] = ("json", "native_tools", "text")

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
_SLUG_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,79}$")


def is_env_var_name(value: str) -> bool:
    return bool(_ENV_NAME.match(value))


def is_slug_name(value: str) -> bool:
    """Seat, role, team, dialect and profile names: lowercase letters, digits, '_' and '-'."""
    return bool(_SLUG_NAME.match(value))


def unknown_tools(tools: list[str]) -> list[str]:
    return [tool for tool in tools if tool not in TOOL_NAMES]
