from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agents.gate import validate
from agents.prompts import TOOL_SCHEMAS
from agents.seed_data import STANDARD_TEAM
from agents.step_schema import MIN_CHAR_BUDGET, call_char_budget, step_schema
from agents.toolcalls import parse_tool_calls

# The keywords that llama.cpp's json-schema-to-grammar, Ollama's format and vLLM's guided decoding all take.
PORTABLE_KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "anyOf",
    "minLength",
    "maxLength",
    "items",
    "maxItems",
    "minimum",
    "description",
}
# The tools the loop adds to each role of the standard team (issue 15), beside what seed_data lists today.
NEW_TOOLS = {
    "architect": ["search_code"],
    "coder": ["search_code", "edit_file", "git_diff"],
    "integrity_guard": ["search_code", "git_diff"],
}
STEP_MAX_TOKENS = 2048


def role_tools() -> dict[str, list[str]]:
    return {
        role["name"]: list(dict.fromkeys([*role["tools"], *NEW_TOOLS[role["name"]], "finish_turn"]))
        for role in STANDARD_TEAM["roles"]
    }


ROLE_TOOLS = role_tools()


def keywords(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            yield key
            if key == "properties":
                for prop in value.values():
                    yield from keywords(prop)
            elif key in ("items", "anyOf"):
                for sub in value if isinstance(value, list) else [value]:
                    yield from keywords(sub)


def free_strings(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, prop in schema.get("properties", {}).items():
        if prop.get("type") == "string" and "enum" not in prop:
            yield key, prop


def branches(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {branch["properties"]["tool"]["enum"][0]: branch for branch in schema["anyOf"]}


def assert_one_allowed_call(value: Any, allowed: list[str], *, ensure_ascii: bool = True) -> None:
    result = parse_tool_calls(json.dumps(value, ensure_ascii=ensure_ascii))

    assert result.problems == []
    [call] = result.calls
    assert call.name in allowed
    assert (call.name, call.arguments) == (value["tool"], value["args"])
    assert validate(call.arguments, TOOL_SCHEMAS[call.name]) == []


def test_one_branch_per_allowed_tool_and_finish_turn_always() -> None:
    schema = step_schema(["read_file", "add_comment", "read_file", "no_such_tool"], max_tokens=STEP_MAX_TOKENS)

    assert list(branches(schema)) == ["read_file", "add_comment", "finish_turn"]
    for name, branch in branches(schema).items():
        assert branch["required"] == ["tool", "args"]
        assert branch["additionalProperties"] is False
        assert branch["properties"]["tool"] == {"type": "string", "enum": [name]}
        args = branch["properties"]["args"]
        assert args["required"] == TOOL_SCHEMAS[name]["required"]
        assert args["additionalProperties"] is False
        assert set(args["properties"]) == set(TOOL_SCHEMAS[name]["properties"])


def test_only_portable_keywords_are_used() -> None:
    every_tool = list(TOOL_SCHEMAS)
    schema = step_schema(every_tool, max_tokens=STEP_MAX_TOKENS)

    assert set(keywords(schema)) <= PORTABLE_KEYWORDS
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(branches(schema)) == set(every_tool)


@pytest.mark.parametrize("max_tokens", [1, 64, 256, 1024, 2048, 8192, 100_000])
def test_every_free_string_is_bounded_and_a_call_fits_the_budget(max_tokens: int) -> None:
    schema = step_schema(list(TOOL_SCHEMAS), max_tokens=max_tokens)

    for name, branch in branches(schema).items():
        args = branch["properties"]["args"]
        budget = call_char_budget(TOOL_SCHEMAS[name], max_tokens)
        limits = {key: prop["maxLength"] for key, prop in free_strings(args)}
        assert budget >= MIN_CHAR_BUDGET
        assert sum(limits.values()) <= budget, (name, limits, budget)
        for key, limit in limits.items():
            original = TOOL_SCHEMAS[name]["properties"][key]
            assert limit >= original.get("minLength", 1)
            assert limit <= original.get("maxLength", limit)


def test_budget_follows_the_token_limit() -> None:
    def limits(max_tokens: int, **options: int) -> tuple[int, int]:
        schema = step_schema(["write_file"], max_tokens=max_tokens, **options)
        args = branches(schema)["write_file"]["properties"]["args"]["properties"]
        return args["content"]["maxLength"], args["path"]["maxLength"]

    def content_limit(max_tokens: int, **options: int) -> int:
        return limits(max_tokens, **options)[0]

    assert 0 < content_limit(256) < content_limit(512) < content_limit(1024)
    # At most 1.2 characters per token (digits, the worst text measured), after the JSON around them:
    # whatever the strings hold, a call at its limits still fits the step's token limit.
    assert sum(limits(1024)) <= 1.2 * 1024
    assert content_limit(1024) > 900
    # Without the grammar ceiling, 4096 tokens leave room for about 4,800 characters of content and path.
    assert 4_000 < sum(limits(4096, max_string_chars=100_000)) <= 1.2 * 4096
    # A limit smaller than the share is kept; larger ones are brought down to it.
    search = branches(step_schema(["search_code"], max_tokens=4096))["search_code"]["properties"]["args"]
    pattern_limit = TOOL_SCHEMAS["search_code"]["properties"]["pattern"]["maxLength"]
    assert search["properties"]["pattern"]["maxLength"] == pattern_limit
    finish = branches(step_schema([], max_tokens=512))["finish_turn"]["properties"]["args"]
    summary_limit = TOOL_SCHEMAS["finish_turn"]["properties"]["summary"]["maxLength"]
    assert finish["properties"]["summary"]["maxLength"] < summary_limit


@pytest.mark.parametrize("max_tokens", [2048, 8192, 131_072])
def test_no_string_reaches_the_llama_cpp_grammar_repetition_limit(max_tokens: int) -> None:
    # llama.cpp refuses a grammar repetition of 2000 or more in some versions ("failed to parse grammar").
    schema = step_schema(list(TOOL_SCHEMAS), max_tokens=max_tokens)

    limits = [prop["maxLength"] for branch in schema["anyOf"] for _, prop in free_strings(branch["properties"]["args"])]
    assert max(limits) == 1999
    write = branches(schema)["write_file"]["properties"]["args"]["properties"]
    assert write["content"]["maxLength"] == 1999


def test_the_tool_schemas_themselves_are_not_changed() -> None:
    before = json.dumps(TOOL_SCHEMAS, sort_keys=True)

    step_schema(list(TOOL_SCHEMAS), max_tokens=16)

    assert json.dumps(TOOL_SCHEMAS, sort_keys=True) == before


@pytest.mark.parametrize(
    "content",
    [
        '{"tool": "delete_file", "args": {"path": "x.py", "confirm": true}}',
        '[{"tool": "read_file", "args": {"path": "a"}}, {"name": "b", "arguments": {}}]',
        "<think>",
        "plan: </think> then write",
        "<reasoning>keep this</reasoning>",
        '```json\n{"tool_calls": [{"function": {"name": "run_verification", "arguments": "{}"}}]}\n```',
    ],
)
def test_calls_and_reasoning_tags_inside_string_arguments_are_content(content: str) -> None:
    value = {"tool": "write_file", "args": {"path": "notes/example.md", "content": content}}
    schema = step_schema(ROLE_TOOLS["coder"], max_tokens=STEP_MAX_TOKENS)
    jsonschema.validate(value, schema)

    assert_one_allowed_call(value, ROLE_TOOLS["coder"])
    assert_one_allowed_call(value, ROLE_TOOLS["coder"], ensure_ascii=False)


# hypothesis-jsonschema (0.23.1, the latest release) no longer runs with the Hypothesis this project uses (its
# object strategy calls a Hypothesis internal that is gone), so values are generated here for the subset of JSON
# Schema that step schemas use, and every value is checked with jsonschema before it is used. The strings are
# drawn partly from fragments that have tripped parsers: JSON of other calls, reasoning tags, quotes, fences.
TRICKY_FRAGMENTS = [
    '{"tool": "delete_file", "args": {"path": "x", "confirm": true}}',
    '{"name": "write_file", "arguments": "{}"}',
    '[{"tool": "read_file", "args": {}}]',
    '{"tool_calls": [',
    "<think>",
    "</think>",
    "<reasoning>",
    "</thought>",
    '"',
    "\\",
    "}",
    "```json\n",
    "\n",
]
TEXT = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(TRICKY_FRAGMENTS)), max_size=8).map("".join)


def values_of(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for the JSON values that `schema` (in the step-schema subset of JSON Schema) admits."""
    if "anyOf" in schema:
        return st.one_of([values_of(branch) for branch in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = {key: values_of(properties[key]) for key in schema.get("required", [])}
        optional = {key: values_of(prop) for key, prop in properties.items() if key not in required}
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 10_000)
        return st.one_of(st.text(min_size=low, max_size=min(high, 64)), TEXT).filter(lambda s: low <= len(s) <= high)
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum"))
    if kind == "array":
        return st.lists(values_of(schema["items"]), max_size=schema.get("maxItems", 10))
    raise AssertionError(f"keyword outside the step-schema subset: {schema}")


def step_values(role: str) -> st.SearchStrategy[Any]:
    return values_of(step_schema(ROLE_TOOLS[role], max_tokens=STEP_MAX_TOKENS))


VALIDATORS = {
    role: jsonschema.Draft202012Validator(step_schema(tools, max_tokens=STEP_MAX_TOKENS))
    for role, tools in ROLE_TOOLS.items()
}


def check_role(role: str, value: Any) -> None:
    VALIDATORS[role].validate(value)
    assert_one_allowed_call(value, ROLE_TOOLS[role])
    assert_one_allowed_call(value, ROLE_TOOLS[role], ensure_ascii=False)


PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


@PROPERTY_SETTINGS
@given(value=step_values("architect"))
@example(value={"tool": "add_comment", "args": {"body": '<think>{"tool": "write_file", "args": {}}'}})
def test_every_architect_step_value_parses_into_one_allowed_call(value: Any) -> None:
    check_role("architect", value)


@PROPERTY_SETTINGS
@given(value=step_values("coder"))
@example(value={"tool": "edit_file", "args": {"path": "a.py", "old_text": "</think>", "new_text": '{"tool": 1}'}})
def test_every_coder_step_value_parses_into_one_allowed_call(value: Any) -> None:
    check_role("coder", value)


@PROPERTY_SETTINGS
@given(value=step_values("integrity_guard"))
@example(value={"tool": "finish_turn", "args": {"summary": "<thinking>done", "remaining": "</thinking>"}})
def test_every_integrity_guard_step_value_parses_into_one_allowed_call(value: Any) -> None:
    check_role("integrity_guard", value)
