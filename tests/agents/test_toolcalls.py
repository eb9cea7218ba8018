from __future__ import annotations

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.providers import ToolCall
from agents.toolcalls import (
    MAX_CALLS,
    MAX_INPUT_CHARS,
    ParsedCall,
    parse_tool_calls,
    strip_reasoning,
)


def names_and_args(text: str) -> list[tuple[str, dict[str, object]]]:
    return [(c.name, c.arguments) for c in parse_tool_calls(text).calls]


def test_tool_args_shape() -> None:
    text = '{"tool": "read_file", "args": {"path": "src/app.py"}}'
    result = parse_tool_calls(text)

    assert result.calls == [
        ParsedCall(name="read_file", arguments={"path": "src/app.py"}, source="text", span=(0, len(text))),
    ]
    assert result.problems == []


def test_name_arguments_shape_with_object_and_string_arguments() -> None:
    text = (
        '{"name": "write_file", "arguments": {"path": "a.py", "content": "x = 1\\n"}}\n'
        '{"name": "add_comment", "arguments": "{\\"text\\": \\"done\\"}"}'
    )

    assert names_and_args(text) == [
        ("write_file", {"path": "a.py", "content": "x = 1\n"}),
        ("add_comment", {"text": "done"}),
    ]


def test_llama3_parameters_key() -> None:
    assert names_and_args('{"name": "list_directory", "parameters": {"path": "."}}') == [
        ("list_directory", {"path": "."})
    ]


def test_function_shape() -> None:
    text = '{"id": "c1", "type": "function", "function": {"name": "get_card_context", "arguments": "{}"}}'

    [call] = parse_tool_calls(text).calls

    assert (call.name, call.arguments, call.id) == ("get_card_context", {}, "c1")


def test_code_fence_with_prose_around() -> None:
    text = (
        "I will read the file first.\n\n"
        "```json\n"
        '{"tool": "read_file", "args": {"path": "README.md"}}\n'
        "```\n\n"
        "Then I will report back."
    )

    result = parse_tool_calls(text)

    assert [(c.name, c.arguments) for c in result.calls] == [("read_file", {"path": "README.md"})]
    start, end = result.calls[0].span or (0, 0)
    assert json.loads(text[start:end]) == {"tool": "read_file", "args": {"path": "README.md"}}


def test_several_objects_and_fences_in_one_text() -> None:
    text = (
        'First {"tool": "read_file", "args": {"path": "a"}} then\n'
        "```\n"
        '{"name": "write_file", "arguments": {"path": "b", "content": ""}}\n'
        "```\n"
        '```json\n{"function": {"name": "add_comment", "arguments": {"text": "ok"}}}\n```'
    )

    assert [n for n, _ in names_and_args(text)] == ["read_file", "write_file", "add_comment"]


def test_list_of_calls_and_tool_calls_wrapper() -> None:
    listed = '[{"tool": "read_file", "args": {"path": "a"}}, {"tool": "read_file", "args": {"path": "b"}}]'
    wrapped = '{"tool_calls": [{"function": {"name": "list_directory", "arguments": {"path": "."}}}]}'

    assert names_and_args(listed) == [("read_file", {"path": "a"}), ("read_file", {"path": "b"})]
    assert names_and_args(wrapped) == [("list_directory", {"path": "."})]


def test_braces_inside_strings_do_not_confuse_the_scan() -> None:
    content = 'function f() { return "}"; } // {"tool": "fake", "args": {}}'
    text = json.dumps({"tool": "write_file", "args": {"path": "f.js", "content": content}})

    assert names_and_args("Here:\n" + text + "\nDone {not json}") == [
        ("write_file", {"path": "f.js", "content": content})
    ]


def test_objects_that_are_not_calls_are_ignored() -> None:
    text = 'Result: {"name": "Alice", "age": 3} and {"status": "ok"} and [1, 2] and {"tool_calls": 5}'

    result = parse_tool_calls(text)

    assert result.calls == []
    assert result.problems == []


def test_arguments_that_are_not_an_object_are_problems() -> None:
    text = (
        '{"tool": "read_file", "args": ["a.txt"]}\n'
        '{"name": "write_file", "arguments": "{broken"}\n'
        '{"name": "add_comment", "arguments": "\\"just a string\\""}\n'
        '{"function": {"name": "list_directory", "arguments": 5}}\n'
        '{"tool": "get_card_context"}'
    )

    result = parse_tool_calls(text)

    assert [c.name for c in result.calls] == ["get_card_context"]
    messages = result.problem_messages
    assert len(messages) == 4
    assert "'read_file': arguments must be a JSON object, not list" in messages[0]
    assert "'write_file': arguments are not valid JSON" in messages[1]
    assert "'add_comment': arguments must be a JSON object, not str" in messages[2]
    assert "'list_directory': arguments must be a JSON object, not int" in messages[3]
    assert result.problems[0].snippet.startswith('{"tool": "read_file"')


def test_bad_names_are_problems() -> None:
    text = '{"tool": 7, "args": {}} {"name": "", "arguments": {}} {"tool": "rm -rf /", "args": {}}'

    result = parse_tool_calls(text)

    assert result.calls == []
    assert len(result.problems) == 3


def test_broken_json_is_skipped_and_later_calls_found() -> None:
    text = '{"tool": "read_file", "args": {"path": "a"} oops\n{"tool": "list_directory", "args": {}}'

    assert names_and_args(text) == [("list_directory", {})]


def test_native_calls_win_over_text() -> None:
    native = [
        ToolCall(name="read_file", arguments={"path": "x"}, id="call_1"),
        ToolCall(name="write_file", arguments={}, id="call_2", raw_arguments="{bad", error="arguments are not valid"),
        {"function": {"name": "add_comment", "arguments": '{"text": "hi"}'}},
        {"name": "list_directory", "arguments": {"path": "."}, "id": "call_4"},
    ]

    result = parse_tool_calls('{"tool": "delete_file", "args": {"path": "x"}}', native=native)

    assert [(c.name, c.arguments, c.source, c.id) for c in result.calls] == [
        ("read_file", {"path": "x"}, "native", "call_1"),
        ("add_comment", {"text": "hi"}, "native", None),
        ("list_directory", {"path": "."}, "native", "call_4"),
    ]
    assert result.problem_messages == ["tool call 'write_file': arguments are not valid"]


def test_reasoning_is_not_parsed() -> None:
    text = (
        '<think>Maybe {"tool": "delete_file", "args": {"path": "x", "confirm": true}}?</think>\n'
        '{"tool": "read_file", "args": {"path": "x"}}'
    )

    assert names_and_args(text) == [("read_file", {"path": "x"})]


def test_unclosed_and_lone_closing_reasoning_tags() -> None:
    unclosed = '{"tool": "a", "args": {}} <think> {"tool": "b", "args": {}}'
    lone_close = 'plan {"tool": "c", "args": {}}</think>{"tool": "d", "args": {}}'

    assert [n for n, _ in names_and_args(unclosed)] == ["a"]
    assert [n for n, _ in names_and_args(lone_close)] == ["d"]
    assert len(strip_reasoning(lone_close)) == len(lone_close)


def test_reasoning_tags_inside_json_strings_are_content() -> None:
    write = {"tool": "write_file", "args": {"path": "prompt.txt", "content": "<think>keep</think> and </think>"}}
    comment = {"tool": "add_comment", "args": {"body": "a lone </thinking> in a comment"}}
    text = f'<think>plan {{"tool": "x", "args": {{}}}}</think>\n{json.dumps(write)}\nthen {json.dumps(comment)}'

    assert names_and_args(text) == [("write_file", write["args"]), ("add_comment", comment["args"])]


def test_call_limit() -> None:
    text = " ".join(json.dumps({"tool": "read_file", "args": {"path": str(i)}}) for i in range(MAX_CALLS + 5))

    result = parse_tool_calls(text)

    assert len(result.calls) == MAX_CALLS
    assert result.calls[-1].arguments == {"path": str(MAX_CALLS - 1)}
    assert any(f"more than {MAX_CALLS}" in m for m in result.problem_messages)


def test_input_size_limit() -> None:
    call = '{"tool": "read_file", "args": {"path": "late"}}'
    text = "x" * MAX_INPUT_CHARS + call

    result = parse_tool_calls(text)

    assert result.calls == []
    assert any("longer than" in m for m in result.problem_messages)


def test_hostile_nesting_and_brace_floods_finish_quickly() -> None:
    hostile = ['{"a":' * 200_000, '[{"a":' * 150_000, '{"' * 500_000, "x" * 900_000 + '{"' * 70_000]
    for text in hostile:
        started = time.monotonic()
        result = parse_tool_calls(text)
        assert time.monotonic() - started < 5.0
        assert result.calls == []
        assert result.problems, "a flood of malformed JSON is reported"


def test_deep_junk_before_a_real_call_still_finds_it() -> None:
    text = ('{"a":' * 2000 + "\n") * 50 + '{"tool": "read_file", "args": {"path": "ok"}}'

    result = parse_tool_calls(text)

    assert [(c.name, c.arguments) for c in result.calls] == [("read_file", {"path": "ok"})]
    assert result.problem_messages == ["JSON nested too deeply was skipped"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('{}[]":, \n`abtoolnameargs\\0123')) | st.characters(), max_size=400))
def test_arbitrary_text_never_crashes(text: str) -> None:
    result = parse_tool_calls(text)

    for call in result.calls:
        assert isinstance(call.arguments, dict)
        assert call.name


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
            st.dictionaries(st.text(max_size=8), st.text(max_size=20) | st.integers(), max_size=3),
        ),
        max_size=5,
    ),
    st.text(alphabet=st.characters(blacklist_characters='{["'), max_size=30),
)
def test_calls_embedded_in_prose_are_all_found(calls: list[tuple[str, dict[str, object]]], prose: str) -> None:
    text = prose.join(json.dumps({"tool": name, "args": args}) for name, args in calls)

    assert names_and_args(prose + text + prose) == calls
