from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.prompt_budget import (
    MESSAGE_OVERHEAD_TOKENS,
    NEWEST_RESERVE_TOKENS,
    SHORTENED_MARKER,
    FittedPrompt,
    PromptTooLarge,
    budget_for,
    chars_per_token,
    conversation_tokens,
    counter,
    estimate_tokens,
    fit_conversation,
    message_cost,
    message_tokens,
    shorten_card_fields,
    shorten_text,
    tools_tokens,
)
from agents.prompts import CardContext, Dialect, PromptContext, compile_prompt
from agents.seed_data import DIALECTS, STANDARD_TEAM

# A ratio as chars_per_token calibrates it for a real tokenizer (its upper bound); the default 3.0 is for
# servers that cannot count.
CALIBRATED = 4.0
LONG_FILE_HEAD = "LONG-FILE-HEAD: module docstring\n"
LONG_FILE_TAIL = "LONG-FILE-TAIL: end of module\n"


def long_file(chars: int) -> str:
    body_line = "    total = sum(value * weight for value, weight in zip(values, weights))  # accumulate\n"
    body = body_line * ((chars - len(LONG_FILE_HEAD) - len(LONG_FILE_TAIL)) // len(body_line) + 1)
    text = LONG_FILE_HEAD + body
    return text[: chars - len(LONG_FILE_TAIL)] + LONG_FILE_TAIL


def coder_context(card: CardContext, *, native_tools: bool = False) -> PromptContext:
    role = next(r for r in STANDARD_TEAM["roles"] if r["name"] == "coder")
    dialect = next(d for d in DIALECTS if d["name"] == "generic-json")
    return PromptContext(
        role_name="coder",
        seat="senior_developer",
        role_intent=role["intent"],
        responsibilities=role["responsibilities"],
        role_constraints=role["constraints"],
        allowed_tools=role["tools"],
        dialect=Dialect(
            model_family=dialect["model_family"],
            output_format=dialect["output_format"],
            constraints=dialect["constraints"],
            guardrail=dialect["guardrail"],
        ),
        native_tools=native_tools,
        card=card,
    )


def long_card() -> CardContext:
    description = " ".join(
        f"Sentence {i} of the import pipeline description explains one more rule." for i in range(300)
    )
    return CardContext(
        id=42,
        title="Import the legacy orders",
        description=shorten_card_fields(description, 1_000),
        requirements="Accept CSV and JSON exports; keep the original order numbers; reject duplicates. " * 3,
        acceptance_criteria="Every legacy order appears once; totals match the old system to the cent. " * 3,
        labels=["backend", "import"],
        epic_name="Migration",
        status="in_progress",
        seat="senior_developer",
    )


def native_step(n: int, calls: list[tuple[str, dict[str, Any], str]], text: str = "") -> list[dict[str, Any]]:
    tool_calls = [{"id": f"call_{n}_{i}", "name": name, "arguments": args} for i, (name, args, _) in enumerate(calls)]
    messages: list[dict[str, Any]] = [{"role": "assistant", "content": text, "tool_calls": tool_calls}]
    for call, (name, _, result) in zip(tool_calls, calls, strict=True):
        messages.append({"role": "tool", "tool_call_id": call["id"], "name": name, "content": result})
    return messages


def text_step(n: int, calls: list[tuple[str, dict[str, Any], str]], text: str = "") -> list[dict[str, Any]]:
    blocks = "\n".join(f"```json\n{json.dumps({'tool': name, 'args': args})}\n```" for name, args, _ in calls)
    results = "\n".join(f"{name}: {result}" for name, _, result in calls)
    return [
        {"role": "assistant", "content": f"{text}\n{blocks}".strip()},
        {"role": "user", "content": f"ORKET-OBSERVATION: step {n}\n{results}"},
    ]


def twelve_steps(newest_file: str) -> list[dict[str, Any]]:
    source = "def parse(row):\n    return row.split(',')\n" * 40
    steps = [
        native_step(1, [("get_card_context", {}, "Card 42: Import the legacy orders. " * 30)], "Reading the card."),
        text_step(2, [("list_directory", {"path": "src"}, "src/orders.py\nsrc/importer.py\nsrc/models.py")]),
        native_step(3, [("read_file", {"path": "src/orders.py"}, source), ("read_file", {"path": "x.py"}, source)]),
        text_step(4, [("search_code", {"pattern": "def parse"}, "src/orders.py:1: def parse(row):\n" * 60)]),
        native_step(5, [("write_file", {"path": "src/importer.py", "content": source * 2}, "wrote 3,440 bytes")]),
        text_step(6, [("run_verification", {}, "FAILED tests/test_importer.py::test_duplicates\n" + "E   x\n" * 200)]),
        native_step(7, [("read_file", {"path": "tests/test_importer.py"}, source)], "Looking at the failing test."),
        text_step(
            8, [("edit_file", {"path": "src/importer.py", "old_text": "a", "new_text": "b"}, "refused: not unique")]
        ),
        native_step(9, [("search_code", {"pattern": "duplicate"}, "src/importer.py:12: seen = set()\n" * 80)]),
        text_step(10, [], "I think the duplicates come from the order numbers being strings."),
        native_step(11, [("add_comment", {"body": "Found the duplicate bug. " * 20}, "comment 7 added")]),
        native_step(12, [("read_file", {"path": "src/legacy_orders.py"}, newest_file)], "Reading the legacy module."),
    ]
    history = [message for step in steps for message in step]
    for index, message in enumerate(history):
        message["test_index"] = index  # extra keys are carried along untouched; they tell the order
    return history


def assert_structure(history: list[dict[str, Any]]) -> None:
    """Tool messages follow their assistant message; every call of an assistant message keeps its answer."""
    assert not history or history[0]["role"] != "tool"
    open_ids: set[str] = set()
    for message in history:
        if message["role"] == "tool":
            assert message["tool_call_id"] in open_ids, message
            open_ids.discard(message["tool_call_id"])
            continue
        assert not open_ids, f"calls without their tool messages: {open_ids}"
        if message["role"] == "assistant":
            open_ids = {call["id"] for call in message.get("tool_calls") or []}
    assert not open_ids


def test_prompt_for_a_2048_token_profile_fits_and_keeps_the_fixed_parts_whole() -> None:
    count = counter(CALIBRATED)
    budget = budget_for(context_size=2048, max_tokens=128)
    fixed = compile_prompt(coder_context(long_card())).messages
    fixed_copy = json.loads(json.dumps(fixed))
    history = twelve_steps(long_file(40_000))

    fitted = fit_conversation(fixed, history, budget_tokens=budget, count=count, context_size=2048, max_tokens=128)

    assert len(fixed[1]["content"]) > 2_000  # the card is long for this context
    assert fitted.tokens <= budget
    assert fitted.tokens == conversation_tokens(fitted.messages, count)
    assert fitted.messages[:2] == fixed_copy
    assert fitted.messages[0] is fixed[0] and fitted.messages[1] is fixed[1]
    rest = fitted.messages[2:]
    assert_structure(rest)
    indexes = [m["test_index"] for m in rest if "test_index" in m]
    assert indexes == sorted(indexes)
    # The newest step is there: its answer whole, its long file cut to head and tail with the marker.
    newest_answer, newest_file = rest[-2], rest[-1]
    assert newest_answer is history[-2]
    assert newest_file["tool_call_id"] == "call_12_0"
    content = newest_file["content"]
    assert content.startswith(LONG_FILE_HEAD) and content.endswith(LONG_FILE_TAIL)
    marker = re.search(r"\[shortened by Orket: ([\d,]+) of 40,000 characters shown; call read_file again", content)
    assert marker and int(marker.group(1).replace(",", "")) < 40_000
    # The oldest steps are replaced by one message that lists their calls.
    assert fitted.omitted_steps >= 1
    summary = rest[0]
    assert summary["role"] == "user" and "test_index" not in summary
    assert summary["content"].startswith(f"[steps 1-{fitted.omitted_steps} omitted to fit the model's context")
    assert "get_card_context" in summary["content"]
    # Everything else that changed says so.
    originals = {m["test_index"]: m for m in history}
    changed = [m for m in rest[1:] if m is not originals[m["test_index"]]]
    assert len(changed) == fitted.shortened >= 1
    for message in changed:
        assert SHORTENED_MARKER in json.dumps(message, ensure_ascii=False)


def test_with_the_default_estimate_a_2048_token_profile_fits_a_shorter_card() -> None:
    count = counter()
    budget = budget_for(context_size=2048, max_tokens=128)
    card = CardContext(id=7, title="Parse dates", description="Accept YYYY-MM-DD; reject the rest.")
    fixed = compile_prompt(coder_context(card)).messages
    history = twelve_steps(long_file(40_000))

    fitted = fit_conversation(fixed, history, budget_tokens=budget, count=count)

    assert fitted.tokens == conversation_tokens(fitted.messages, count) <= budget
    assert fitted.messages[:2] == fixed
    assert_structure(fitted.messages[2:])
    assert fitted.messages[-1]["tool_call_id"] == "call_12_0"


def test_native_tool_specs_count_as_part_of_the_fixed_prompt() -> None:
    count = counter(CALIBRATED)
    card = CardContext(id=7, title="Parse dates", description="Accept YYYY-MM-DD; reject the rest.")
    compiled = compile_prompt(coder_context(card, native_tools=True))
    reserved = tools_tokens(compiled.tools, count)
    history = twelve_steps(long_file(40_000))

    fitted = fit_conversation(
        compiled.messages, history, budget_tokens=budget_for(4096, 512), count=count, reserved_tokens=reserved
    )

    assert reserved > 500
    assert fitted.fixed_tokens == conversation_tokens(compiled.messages, count) + reserved
    assert fitted.tokens == conversation_tokens(fitted.messages, count) + reserved <= fitted.budget_tokens


def test_a_conversation_that_fits_is_returned_unchanged() -> None:
    fixed = [{"role": "system", "content": "rules"}, {"role": "user", "content": "card"}]
    history = native_step(1, [("read_file", {"path": "a.py"}, "print(1)\n")], "Reading.")

    fitted = fit_conversation(fixed, history, budget_tokens=1000, count=counter())

    assert fitted == FittedPrompt(
        messages=[*fixed, *history],
        tokens=conversation_tokens([*fixed, *history], counter()),
        shortened=0,
        omitted_steps=0,
        fixed_tokens=conversation_tokens(fixed, counter()),
        budget_tokens=1000,
    )
    assert all(out is original for out, original in zip(fitted.messages[2:], history, strict=True))


def test_older_observations_are_shortened_before_answers_and_before_steps_are_omitted() -> None:
    count = counter()
    fixed = [{"role": "system", "content": "rules"}, {"role": "user", "content": "card"}]
    old_answer = "I read the module to see how rows are split. " * 10
    history = [
        *native_step(1, [("read_file", {"path": "a.py"}, "x = 1\n" * 1000)], old_answer),
        *text_step(2, [("read_file", {"path": "b.py"}, "y = 2\n" * 10)], "Next file."),
    ]
    budget = conversation_tokens([*fixed, *history], count) - 1000

    fitted = fit_conversation(fixed, history, budget_tokens=budget, count=count)

    assert fitted.omitted_steps == 0 and fitted.shortened == 1
    old_answer_out, old_file_out, *newest = fitted.messages[2:]
    assert old_answer_out is history[0]
    assert (
        SHORTENED_MARKER in old_file_out["content"] and "call read_file again for the rest" in old_file_out["content"]
    )
    assert newest == history[2:]


def test_older_answers_lose_long_arguments_but_keep_their_call_ids() -> None:
    count = counter()
    fixed = [{"role": "system", "content": "rules"}, {"role": "user", "content": "card"}]
    history = [
        *native_step(1, [("write_file", {"path": "big.py", "content": "z = 3\n" * 2000}, "wrote it")]),
        *native_step(2, [("read_file", {"path": "big.py"}, "z = 3\n" * 5)], "Checking."),
    ]
    budget = conversation_tokens([*fixed, *history], count) - 3000

    fitted = fit_conversation(fixed, history, budget_tokens=budget, count=count)

    answer = fitted.messages[2]
    assert fitted.omitted_steps == 0
    assert [call["id"] for call in answer["tool_calls"]] == ["call_1_0"]
    arguments = answer["tool_calls"][0]["arguments"]
    assert arguments["path"] == "big.py" and SHORTENED_MARKER in arguments["content"]
    assert history[0]["tool_calls"][0]["arguments"]["content"] == "z = 3\n" * 2000  # the input is not changed
    assert_structure(fitted.messages[2:])


def test_a_json_text_observation_keeps_its_marker_line_when_shortened() -> None:
    text = "ORKET-OBSERVATION: step 3\n" + "read_file: " + "q" * 10_000

    short = shorten_text(text, 50, counter())

    assert short.startswith("ORKET-OBSERVATION: step 3\n")
    assert estimate_tokens(short) <= 50 and SHORTENED_MARKER in short


def test_fixed_parts_bigger_than_the_budget_raise_with_the_sizes() -> None:
    count = counter()
    fixed = compile_prompt(coder_context(long_card())).messages
    needed = conversation_tokens(fixed, count)
    budget = budget_for(2048, 512)

    with pytest.raises(PromptTooLarge) as caught:
        fit_conversation(fixed, [], budget_tokens=budget, count=count, context_size=2048, max_tokens=512)

    message = str(caught.value)
    assert f"the fixed part of the prompt needs {needed:,} tokens" in message
    assert f"the profile's context allows {budget:,} (context size 2,048 minus the answer's max_tokens 512" in message
    assert caught.value.needed_tokens == needed + NEWEST_RESERVE_TOKENS
    assert str(caught.value.with_profile("tiny-llama")).startswith('model profile "tiny-llama": the fixed part')


def test_the_reserve_for_the_conversation_is_part_of_the_fixed_check() -> None:
    fixed = [{"role": "system", "content": "s" * 300}, {"role": "user", "content": "u" * 300}]
    needed = conversation_tokens(fixed, counter())

    fit_conversation(fixed, [], budget_tokens=needed + NEWEST_RESERVE_TOKENS, count=counter())
    with pytest.raises(PromptTooLarge):
        fit_conversation(fixed, [], budget_tokens=needed + NEWEST_RESERVE_TOKENS - 1, count=counter())


def test_a_history_that_breaks_the_tool_structure_is_refused() -> None:
    fixed = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    orphan = {"role": "tool", "tool_call_id": "call_9", "name": "read_file", "content": "x"}
    with pytest.raises(ValueError, match="tool_call_id 'call_9'"):
        fit_conversation(fixed, [orphan], budget_tokens=500, count=counter())
    answer = native_step(1, [("read_file", {"path": "a"}, "x")])
    with pytest.raises(ValueError, match="answers no call"):
        fit_conversation(fixed, [answer[0], orphan], budget_tokens=500, count=counter())


def test_budget_for_leaves_room_for_the_answer_and_a_margin() -> None:
    assert budget_for(2048, 128) == 2048 - 128 - 62
    assert budget_for(1000, 100) == 1000 - 100 - 32
    with pytest.raises(PromptTooLarge, match="max_tokens \\(2,048\\) leaves no room"):
        budget_for(2048, 2048)
    with pytest.raises(PromptTooLarge):
        budget_for(0, 0)
    with pytest.raises(PromptTooLarge):
        budget_for(100, 90)


def test_estimates_count_utf8_bytes_and_message_overhead() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 2
    assert estimate_tokens("é" * 3) == 2  # 6 bytes
    assert estimate_tokens("abcdefgh", 4.0) == 2
    with pytest.raises(ValueError):
        estimate_tokens("x", 0)
    call = {"id": "c1", "name": "read_file", "arguments": {"path": "a.py"}}
    message = {"role": "assistant", "content": "", "tool_calls": [call]}
    serialized = json.dumps([call], separators=(",", ":"))
    assert message_tokens(message) == MESSAGE_OVERHEAD_TOKENS + estimate_tokens(serialized)
    tool = {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": "abc"}
    assert message_tokens(tool) == MESSAGE_OVERHEAD_TOKENS + 1 + 1 + 3


def test_calibration_never_underestimates_the_sample() -> None:
    sample = "The quick brown fox jumps over the lazy dog. " * 20
    for counted in (50, 100, 200, 400, 900):
        ratio = chars_per_token(sample, counted)
        assert 1.0 <= ratio <= 4.0
        assert estimate_tokens(sample, ratio) >= counted
    with pytest.raises(ValueError):
        chars_per_token("", 10)


def test_card_fields_are_cut_to_their_limit_keeping_head_and_tail() -> None:
    text = "HEAD " + "middle words " * 2000 + " TAIL"

    short = shorten_card_fields(text, 500)

    assert len(short) <= 500
    assert short.startswith("HEAD ") and short.endswith(" TAIL")
    assert re.search(r"\[shortened by Orket: \d+ of 26,010 characters shown", short)
    assert shorten_card_fields("short", 500) == "short"
    assert len(shorten_card_fields(text, 10)) <= 10


# ---------------------------------------------------------------------------------------------------------------
# Properties


def word_count(text: str) -> int:
    """A counter unlike the estimate: words and punctuation, not bytes."""
    return len(re.findall(r"\s?\w+|\s|[^\w\s]", text))


COUNTERS = st.sampled_from([counter(), counter(1.5), counter(CALIBRATED), word_count])
PIECES = st.sampled_from(["x", "word ", "é", "漢字", "line\n", '{"a": 1}, '])


@st.composite
def contents(draw: st.DrawFn, max_size: int = 6000) -> str:
    return draw(PIECES) * draw(st.integers(0, max_size // 4))


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = []
    if draw(st.booleans()):
        history.append({"role": "user", "content": draw(contents(500))})
    for n in range(1, draw(st.integers(0, 14)) + 1):
        kind = draw(st.sampled_from(["native", "text", "reminder"]))
        calls = [
            (
                draw(st.sampled_from(["read_file", "write_file", "search_code"])),
                {"path": draw(contents(80))},
                draw(contents()),
            )
            for _ in range(draw(st.integers(1 if kind == "native" else 0, 3)))
        ]
        if kind == "native":
            history += native_step(n, calls, draw(contents(300)))
        elif kind == "text":
            history += text_step(n, calls, draw(contents(300)))
        else:
            history += [
                {"role": "assistant", "content": draw(contents(300))},
                {"role": "user", "content": "Call a tool."},
            ]
    for index, message in enumerate(history):
        message["test_index"] = index
    return history


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    history=histories(),
    count=COUNTERS,
    system=contents(3000),
    card=contents(3000),
    slack=st.integers(-100, 4000),
    reserved=st.integers(0, 300),
)
def test_fitting_always_fits_keeps_the_fixed_parts_the_structure_and_the_order(
    history: list[dict[str, Any]], count: Any, system: str, card: str, slack: int, reserved: int
) -> None:
    fixed = [{"role": "system", "content": system}, {"role": "user", "content": card}]
    budget = max(0, conversation_tokens(fixed, count) + reserved + slack)
    snapshot = json.dumps(history, sort_keys=True)
    try:
        fitted = fit_conversation(fixed, history, budget_tokens=budget, count=count, reserved_tokens=reserved)
    except PromptTooLarge as error:
        assert error.needed_tokens is not None and error.needed_tokens > budget
        return
    assert json.dumps(history, sort_keys=True) == snapshot  # the input is never changed
    assert fitted.tokens == conversation_tokens(fitted.messages, count) + reserved <= budget
    assert fitted.messages[0] is fixed[0] and fitted.messages[1] is fixed[1]
    rest = fitted.messages[2:]
    assert_structure(rest)
    indexes = [m["test_index"] for m in rest if "test_index" in m]
    assert indexes == sorted(indexes)
    assert len(indexes) == len(set(indexes))
    if history:
        assert indexes and indexes[-1] == history[-1]["test_index"]  # the newest message is never dropped
        newest_answer = max((i for i, m in enumerate(history) if m["role"] == "assistant"), default=None)
        if newest_answer is not None:
            assert newest_answer in indexes
    kept_whole = sum(1 for m in rest if "test_index" in m and m is history[m["test_index"]])
    assert kept_whole + fitted.shortened == len(indexes)
    if conversation_tokens([*fixed, *history], count) + reserved <= budget:
        assert rest == history
    for message in rest:
        if "test_index" in message and message is not history[message["test_index"]]:
            assert SHORTENED_MARKER in json.dumps(message, ensure_ascii=False)
    assert sum(1 for m in rest if "test_index" not in m) == (1 if len(indexes) < len(history) else 0)


@settings(max_examples=300, deadline=None)
@given(text=contents(20_000), limit=st.integers(0, 3000), count=COUNTERS)
def test_shortened_text_fits_whenever_the_marker_fits(text: str, limit: int, count: Any) -> None:
    short = shorten_text(text, limit, count)

    if count(text) <= limit:
        assert short == text
    else:
        assert SHORTENED_MARKER in short
        marker_only = shorten_text(text, 0, count)
        if count(marker_only) <= limit:
            assert count(short) <= limit


def test_message_cost_counts_tool_calls_as_objects_too() -> None:
    from agents.providers.base import ToolCall

    as_object = {"role": "assistant", "content": "", "tool_calls": [ToolCall("read_file", {"path": "a"}, "c1")]}
    assert message_cost(as_object, counter()) > MESSAGE_OVERHEAD_TOKENS


def test_omitted_steps_are_listed_one_line_per_step_when_there_is_room() -> None:
    count = counter()
    card = CardContext(id=7, title="Parse dates", description="Accept YYYY-MM-DD; reject the rest.")
    fixed = compile_prompt(coder_context(card)).messages
    history = twelve_steps(long_file(40_000))

    fitted = fit_conversation(fixed, history, budget_tokens=budget_for(4096, 512), count=count)

    assert fitted.omitted_steps == 3
    assert fitted.messages[2]["content"] == (
        "[steps 1-3 omitted to fit the model's context. Calls made:\n"
        "step 1: get_card_context()\n"
        'step 2: list_directory(path="src")\n'
        'step 3: read_file(path="src/orders.py"), read_file(path="x.py")]'
    )
    assert fitted.messages[3] is history[7]  # step 4's answer comes next, whole
    newest_file = fitted.messages[-1]["content"]
    assert len(newest_file) > 2_000 and SHORTENED_MARKER in newest_file  # most of the room goes to the newest


def test_the_budget_and_the_tokenizer_import_without_django() -> None:
    code = (
        "import sys\n"
        "import agents.prompt_budget, agents.providers.tokenize\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not loaded, loaded\n"
    )
    root = Path(__file__).resolve().parents[2]

    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr


def test_room_left_after_shortening_goes_back_to_the_newest_long_file() -> None:
    count = counter()
    fixed = [{"role": "system", "content": "rules"}, {"role": "user", "content": "card"}]
    history = [
        *text_step(1, [("list_directory", {"path": "."}, "a.py\nb.py")], "Looking around."),
        *native_step(2, [("read_file", {"path": "a.py"}, long_file(6_000))], "Reading."),
    ]
    room = 1_500
    budget = conversation_tokens(fixed, count) + room

    fitted = fit_conversation(fixed, history, budget_tokens=budget, count=count)

    assert fitted.messages[2:4] == history[:2]  # the older step stays whole
    newest_file = fitted.messages[-1]
    assert SHORTENED_MARKER in newest_file["content"]
    assert message_cost(newest_file, count) > room // 2  # more than the half it was first cut to
    assert budget - fitted.tokens < 40  # at most a line of the file, dropped to cut at a line break
