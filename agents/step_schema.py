"""The JSON schema of one step's answer for constrained output: exactly one well-formed action.

    schema = step_schema(role.tools, max_tokens=profile.max_tokens)
    ChatRequest(..., response_schema=schema)

The schema admits one object {"tool": <name>, "args": <that tool's arguments>} per allowed tool, plus
`finish_turn` always, as an `anyOf` with one branch per tool. It keeps to the JSON-schema keywords that
llama.cpp's json-schema-to-grammar, Ollama's `format` and vLLM's guided decoding all accept (type, properties,
required, additionalProperties, enum, anyOf, minLength, maxLength, items, maxItems, minimum, description):
no `$ref`, `pattern`, `format` or `oneOf`.

Length limits. A constrained model cannot stop early on its own, so a string without an upper bound can run
past the step's token limit and leave the call cut off half-way, which is no call at all. Every free string of
a tool therefore gets a maxLength, and the strings of one tool share one character budget derived from the
step's `max_tokens` (about three characters per token, after room for the JSON around them). No maxLength goes
above `max_string_chars` (default 1999): llama.cpp's grammar parser (llama-server, LM Studio, Ollama) refuses
a repetition of 2000 or more in some versions ("failed to parse grammar", HTTP 400) and silently drops the
bound in others, so a larger one would either break every request or protect nothing.

Pure: no Django, no I/O. The answer is parsed with agents.toolcalls.parse_tool_calls like any other.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from typing import Any

from agents.prompts import TOOL_SCHEMAS

FINISH_TOOL = "finish_turn"
# Few enough characters per token that a string at its maxLength still fits the step's token limit,
# whatever it holds: measured with llama.cpp's tokenizer, code runs near 3 characters a token,
# identifiers joined by underscores near 2.3 and digits near 1.2. A call cut off at the token limit
# is not a call at all, so the bound takes the worst of these.
CHARS_PER_TOKEN = 1.2
# Tokens kept for the JSON around the strings: braces, keys, quotes, the tool name.
RESERVED_TOKENS = 32
RESERVED_TOKENS_PER_PROPERTY = 4
RESERVED_TOKENS_PER_ARRAY_ITEM = 3
# No string budget goes below this, however small the token limit: a smaller one makes most calls useless.
MIN_CHAR_BUDGET = 64
# A path never needs more (the tool gate refuses longer paths anyway), and takes at most an eighth of a call's
# budget when that is tight, but never less than MIN_PATH_CHARS: the rest is for content.
MAX_PATH_CHARS = 1024
MIN_PATH_CHARS = 128
# llama.cpp's MAX_REPETITION_THRESHOLD is 2000, and some versions refuse exactly 2000 too.
GRAMMAR_MAX_STRING_CHARS = 1999


def step_schema(
    allowed_tools: Sequence[str], *, max_tokens: int, max_string_chars: int = GRAMMAR_MAX_STRING_CHARS
) -> dict[str, Any]:
    """The schema of one action: one of `allowed_tools` (unknown names skipped) or finish_turn.

    max_tokens: the step's token limit. max_string_chars: the largest maxLength any string gets.
    """
    names = [name for name in dict.fromkeys([*allowed_tools, FINISH_TOOL]) if name in TOOL_SCHEMAS]
    return {"anyOf": [_branch(name, max_tokens, max_string_chars) for name in names]}


def call_char_budget(arguments_schema: dict[str, Any], max_tokens: int) -> int:
    """How many characters the strings of one call with these arguments may take together."""
    properties = arguments_schema.get("properties", {})
    reserved = RESERVED_TOKENS + RESERVED_TOKENS_PER_PROPERTY * len(properties)
    for prop in properties.values():
        if prop.get("type") == "array":
            reserved += RESERVED_TOKENS_PER_ARRAY_ITEM * int(prop.get("maxItems", 0))
    return max(MIN_CHAR_BUDGET, int((max_tokens - reserved) * CHARS_PER_TOKEN))


def bounded_arguments(
    name: str, *, max_tokens: int, max_string_chars: int = GRAMMAR_MAX_STRING_CHARS
) -> dict[str, Any]:
    """A copy of the tool's argument schema whose free strings share the call's character budget.

    The maxLength values here are also what a prompt can tell the model about the size of one call.
    """
    schema = copy.deepcopy(TOOL_SCHEMAS[name])
    properties: dict[str, Any] = schema.get("properties", {})
    free = {key: prop for key, prop in properties.items() if _is_free_string(prop)}
    budget = call_char_budget(schema, max_tokens)
    limits = {key: min(_own_limit(key, prop, budget), max_string_chars) for key, prop in free.items()}
    for key, cap in _share(limits, budget).items():
        free[key]["maxLength"] = max(cap, int(free[key].get("minLength", 1)))
    _cap_nested_strings(schema, min(budget, max_string_chars))
    return schema


# ---------------------------------------------------------------------------------------------------------------


def _branch(name: str, max_tokens: int, max_string_chars: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "tool": {"type": "string", "enum": [name]},
            "args": bounded_arguments(name, max_tokens=max_tokens, max_string_chars=max_string_chars),
        },
        "required": ["tool", "args"],
        "additionalProperties": False,
    }


def _is_free_string(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "string" and "enum" not in prop


def _own_limit(key: str, prop: dict[str, Any], budget: int) -> int:
    limit = int(prop.get("maxLength", sys.maxsize))
    if key == "path":
        return min(limit, MAX_PATH_CHARS, max(MIN_PATH_CHARS, budget // 8))
    return limit


def _share(limits: dict[str, int], budget: int) -> dict[str, int]:
    """Split `budget` over the strings: each gets a fair share or its own smaller limit, whichever is less.

    Strings with small limits are served first, so what they leave over goes to the others.
    """
    caps: dict[str, int] = {}
    remaining = budget
    order = sorted(limits, key=lambda key: limits[key])
    for left, key in zip(range(len(order), 0, -1), order, strict=True):
        caps[key] = min(limits[key], remaining // left)
        remaining -= caps[key]
    return caps


def _cap_nested_strings(schema: dict[str, Any], budget: int) -> None:
    """Strings deeper down (array items) get the whole budget as a ceiling; the top level is already shared."""
    for prop in schema.get("properties", {}).values():
        items = prop.get("items")
        if isinstance(items, dict):
            _cap_string(items, budget)
            _cap_nested_strings(items, budget)


def _cap_string(schema: dict[str, Any], budget: int) -> None:
    if _is_free_string(schema) and schema.get("maxLength", budget + 1) > budget:
        schema["maxLength"] = budget
