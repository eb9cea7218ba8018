"""The tool gate and the workspace path policy: pure checks made before any tool call runs.

    decision = check_call("write_file", {"path": "services/x.py", "content": "..."},
                          allowed_tools=role.tools, calls_in_answer=3, governance_on=True)
    if not decision.allowed:
        record_refusal(decision.rule, decision.message, decision.fix)   # never executed

`check_call` and `check_path` are textual (no I/O). The file tools then reach the path without
following any symbolic link (agents.safe_files), so a link planted in the workspace, before or during
a call, cannot lead a read or a write outside it.
Rules (Decision.rule): unknown_tool, tool_not_allowed, too_many_calls, bad_arguments, confirm_required,
too_large, path_refused, fixture_protected, outside_component.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.prompts import TOOL_SCHEMAS, VERIFICATION_FOLDER
from boards.governance import check_workspace_path, path_in_component

MAX_CALLS_PER_ANSWER = 20
MAX_FILE_BYTES = 1024 * 1024
MAX_PATH_CHARS = 1024
MAX_SEGMENT_CHARS = 255
PATH_TOOLS = frozenset(
    {"read_file", "write_file", "edit_file", "list_directory", "delete_file", "search_code", "git_diff"}
)
WRITE_TOOLS = frozenset({"write_file", "edit_file", "delete_file"})
# Tools whose path may name a folder or be left out (the whole workspace).
FOLDER_TOOLS = frozenset({"list_directory", "search_code", "git_diff"})

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str = ""
    message: str = ""
    fix: str = ""


ALLOWED = Decision(True)


def check_call(
    name: str,
    arguments: Mapping[str, Any],
    *,
    allowed_tools: Sequence[str],
    calls_in_answer: int,
    governance_on: bool,
) -> Decision:
    """Whether one tool call may run.

    calls_in_answer: how many calls of this step's answer came before this one (the 0-based position of this
    call), so the 21st call of one answer (calls_in_answer=20) is refused.
    """
    if not isinstance(name, str) or name not in TOOL_SCHEMAS:
        known = ", ".join(sorted(TOOL_SCHEMAS))
        return Decision(False, "unknown_tool", f"There is no tool called {name!r}.", f"Use one of: {known}.")
    if name not in allowed_tools:
        mine = ", ".join(allowed_tools) or "none"
        return Decision(
            False,
            "tool_not_allowed",
            f"Your role may not call {name}.",
            f"Use only your role's tools ({mine}), or leave a note for a seat that may.",
        )
    if calls_in_answer >= MAX_CALLS_PER_ANSWER:
        return Decision(
            False,
            "too_many_calls",
            f"One answer may make at most {MAX_CALLS_PER_ANSWER} tool calls; this was call {calls_in_answer + 1}.",
            "Make fewer calls per answer; you will see their results before your next answer.",
        )
    if not isinstance(arguments, Mapping):
        return Decision(False, "bad_arguments", f"{name}: arguments must be a JSON object.", _example(name))
    errors = validate(arguments, TOOL_SCHEMAS[name])
    if errors:
        return Decision(False, "bad_arguments", f"{name}: " + "; ".join(errors[:5]), _example(name))
    if name == "delete_file" and arguments.get("confirm") is not True:
        return Decision(
            False,
            "confirm_required",
            "delete_file deletes only with confirm: true.",
            'Call delete_file again with "confirm": true if you really mean to delete the file.',
        )
    if name in ("write_file", "edit_file"):
        size = len(arguments["content" if name == "write_file" else "new_text"].encode("utf-8", errors="surrogatepass"))
        if size > MAX_FILE_BYTES:
            return Decision(
                False,
                "too_large",
                f"The content is {size} bytes; a file may have at most {MAX_FILE_BYTES} bytes (1 MiB).",
                "Write smaller files: split the content over several modules.",
            )
    if name in PATH_TOOLS:
        path = arguments.get("path", "")
        decision = check_path(path, write=name in WRITE_TOOLS, allow_root=name in FOLDER_TOOLS)
        if not decision.allowed:
            return decision
        if governance_on and name in ("write_file", "edit_file") and not path_in_component(path):
            refusal = check_workspace_path(path)
            return Decision(
                False,
                "outside_component",
                refusal.reason or f"{path!r} is not under a recognised component folder.",
                "Architecture governance is on: put the file under one of the component folders, e.g. "
                f"services/{_last_segment(path)}.",
            )
    return ALLOWED


def check_path(path: str, *, write: bool = False, allow_root: bool = False) -> Decision:
    """Textual checks of a workspace path (no I/O).

    Relative only, forward slashes, no drive letters, UNC paths, NUL or control characters, no `..` segment, no
    `.git` segment, at most 255 characters per segment and 1024 in all; writes and deletes may not touch the
    verification fixtures folder. `allow_root` accepts "" and "." (the workspace itself, for list_directory).
    """
    if not isinstance(path, str):
        return _refused("The path must be a string.")
    if len(path) > MAX_PATH_CHARS:
        return _refused(f"The path has {len(path)} characters; at most {MAX_PATH_CHARS} are allowed.")
    if "\x00" in path:
        return _refused("The path contains a NUL byte.")
    if _CONTROL.search(path):
        return _refused("The path contains control characters.")
    if path.startswith(("\\\\", "//")):
        return _refused(f"{path!r} is a network (UNC) path; use a path relative to the workspace.")
    if "\\" in path:
        return _refused(f"{path!r} contains backslashes; use forward slashes.", "Write the path as a/b/c.")
    if _DRIVE.match(path):
        return _refused(f"{path!r} starts with a drive letter; use a path relative to the workspace.")
    if path.startswith("/"):
        return _refused(f"{path!r} is absolute; paths are relative to the workspace.")
    segments = path.split("/")
    if ".." in segments:
        return _refused(f"{path!r} uses '..'; paths must stay inside the workspace.")
    for segment in segments:
        if len(segment) > MAX_SEGMENT_CHARS:
            return _refused(f"A name in the path has {len(segment)} characters; at most {MAX_SEGMENT_CHARS}.")
        if segment.casefold() == ".git":
            return _refused("The .git folder belongs to the workspace's version control; it cannot be touched.")
    parts = [segment for segment in segments if segment not in ("", ".")]
    if not parts:
        if allow_root:
            return ALLOWED
        return _refused("The path names no file.", "Give a file path such as services/example.py.")
    if write:
        if path.endswith("/") or segments[-1] in ("", "."):
            return _refused(f"{path!r} names a folder, not a file.")
        if parts[0].casefold() == VERIFICATION_FOLDER:
            return _fixture(path)
    return ALLOWED


# ---------------------------------------------------------------------------------------------------------------
# A validator for the subset of JSON Schema the tool schemas use.


def validate(value: Any, schema: Mapping[str, Any], where: str = "") -> list[str]:
    """Problems of `value` against `schema` (empty when valid).

    Supports type (object, string, boolean, array, integer, number), properties, required,
    additionalProperties (false), enum, minLength, maxLength, minimum, items, maxItems.
    """
    label = f"argument '{where}'" if where else "the arguments"
    kind = schema.get("type")
    if kind is not None and not _is_type(value, kind):
        return [f"{label} must be {_TYPE_WORDS.get(kind, kind)}, not {_json_type(value)}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        options = ", ".join(str(option) for option in schema["enum"])
        problems.append(f"{label} must be one of: {options}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{label} must have at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{label} must have at most {schema['maxLength']} characters")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and "minimum" in schema and value < schema["minimum"]:
        problems.append(f"{label} must be at least {schema['minimum']}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{label} must have at most {schema['maxItems']} items")
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                problems += validate(item, items, f"{where}[{i}]" if where else f"[{i}]")
    if isinstance(value, Mapping):
        properties: Mapping[str, Any] = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"argument '{key}' is required")
        for key in sorted(value, key=str):
            sub = f"{where}.{key}" if where else str(key)
            if key in properties:
                problems += validate(value[key], properties[key], sub)
            elif schema.get("additionalProperties") is False:
                allowed = ", ".join(properties) or "none"
                problems.append(f"unknown argument '{str(key)[:80]}' (allowed: {allowed})")
    return problems


_TYPE_WORDS = {
    "object": "an object",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "integer": "an integer",
    "number": "a number",
}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list | tuple)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _example(name: str) -> str:
    schema = TOOL_SCHEMAS[name]
    parts = []
    for key, prop in schema["properties"].items():
        optional = "" if key in schema["required"] else " (optional)"
        parts.append(f"{key}: {_TYPE_WORDS.get(prop.get('type', ''), 'a value')}{optional}")
    shape = "; ".join(parts) or "no arguments"
    return f"Call {name} with {shape}."


def _refused(
    message: str, fix: str = "Use a relative path inside the workspace, such as services/example.py."
) -> Decision:
    return Decision(False, "path_refused", message, fix)


def _fixture(path: str) -> Decision:
    return Decision(
        False,
        "fixture_protected",
        f"{path!r} is in the verification fixtures folder ({VERIFICATION_FOLDER}/), which agents may not change.",
        "Leave the fixtures alone; change the code under test instead.",
    )


def _last_segment(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name or "module.py"
