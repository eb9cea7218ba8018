from __future__ import annotations

from typing import Any

import pytest

from agents.providers import (
    ChatRequest,
    Finished,
    ProviderRefused,
    ProviderTimeout,
    ReasoningDelta,
    ScriptedProvider,
    ScriptedReply,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallsDone,
    provider_for,
)
from agents.providers.scripted import split_words


def request(content: str = "please write the file now", **overrides: Any) -> ChatRequest:
    values: dict[str, Any] = {
        "messages": [{"role": "system", "content": "You are the coder."}, {"role": "user", "content": content}],
        "model": "scripted",
    }
    values.update(overrides)
    return ChatRequest(**values)


def texts(events: list[StreamEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


def test_plays_replies_in_order_in_small_deltas() -> None:
    call = ToolCall(name="write_file", arguments={"path": "hello.py", "content": "print('hi')"}, id="call_1")
    provider = ScriptedProvider([ScriptedReply(text="I will write hello.py now."), ScriptedReply(tool_calls=[call])])

    first = list(provider.stream(request()))
    second = list(provider.stream(request()))

    assert texts(first) == ["I will ", "write hello.py ", "now."]
    assert "".join(texts(first)) == "I will write hello.py now."
    assert first[-1] == Finished(
        prompt_tokens=9,
        completion_tokens=5,
        finish_reason="stop",
        metadata={"provider": "scripted", "model": "scripted", "reply_index": 0},
    )
    assert second[:-1] == [ToolCallsDone([call])]
    finished = second[-1]
    assert isinstance(finished, Finished)
    assert finished.finish_reason == "tool_calls"
    # "write_file" + the arguments' JSON: {"path": "hello.py", "content": "print('hi')"} is 4 words.
    assert finished.completion_tokens == 1 + 4
    assert provider.calls_made == 2


def test_same_script_gives_same_events() -> None:
    script = [ScriptedReply(text="alpha beta gamma delta epsilon", reasoning="thinking hard")]

    assert list(ScriptedProvider(script).stream(request())) == list(ScriptedProvider(script).stream(request()))


def test_reasoning_streams_before_text() -> None:
    events = list(ScriptedProvider([ScriptedReply(text="ok", reasoning="a b c")], words_per_delta=1).stream(request()))

    assert [type(e) for e in events] == [ReasoningDelta, ReasoningDelta, ReasoningDelta, TextDelta, Finished]


def test_exhausted_and_missing_script_are_refused() -> None:
    provider = ScriptedProvider([ScriptedReply(text="only one")])
    list(provider.stream(request()))

    with pytest.raises(ProviderRefused, match="has 1 replies and reply 2 was asked for"):
        list(provider.stream(request()))
    with pytest.raises(ProviderRefused, match="no script"):
        list(provider_for("scripted").stream(request()))


def test_responder_answers_from_the_request() -> None:
    def by_role(req: ChatRequest) -> ScriptedReply:
        system = str(req.messages[0]["content"])
        return ScriptedReply(text="approved" if "guard" in system else "coded")

    provider = ScriptedProvider(by_role)
    guard = request()
    guard.messages[0]["content"] = "You are the integrity guard."

    assert texts(list(provider.stream(request()))) == ["coded"]
    assert texts(list(provider.stream(guard))) == ["approved"]


def test_scripted_error_is_raised() -> None:
    provider = ScriptedProvider([ScriptedReply(error=ProviderTimeout("rehearsed timeout")), ScriptedReply(text="ok")])

    with pytest.raises(ProviderTimeout, match="rehearsed timeout"):
        list(provider.stream(request()))
    assert texts(list(provider.stream(request()))) == ["ok"]


def test_max_tokens_truncates_with_length_reason() -> None:
    call = ToolCall(name="read_file", arguments={}, id="c")
    provider = ScriptedProvider([ScriptedReply(text="one two three four five", tool_calls=[call])])

    events = list(provider.stream(request(max_tokens=3)))

    assert "".join(texts(events)) == "one two three"
    assert not any(isinstance(e, ToolCallsDone) for e in events)
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert (finished.finish_reason, finished.completion_tokens) == ("length", 3)


def test_tokens_per_second_paces_the_stream() -> None:
    slept: list[float] = []
    provider = ScriptedProvider(
        [ScriptedReply(text="a b c d e f")], words_per_delta=2, tokens_per_second=4.0, sleep=slept.append
    )

    list(provider.stream(request()))

    assert slept == [0.5, 0.5, 0.5]


def test_split_words_keeps_every_character() -> None:
    text = "  leading\n\nand  double  spaces\tand tabs "
    assert "".join(split_words(text, 1)) == text
    assert "".join(split_words(text, 3)) == text
    assert split_words("", 2) == []


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="words_per_delta"):
        ScriptedProvider([], words_per_delta=0)
    with pytest.raises(ValueError, match="tokens_per_second"):
        ScriptedProvider([], tokens_per_second=0)
