from __future__ import annotations

import json
import time
from typing import Any

import pytest

from agents.providers import (
    ChatRequest,
    Finished,
    OllamaProvider,
    ProviderBadResponse,
    ProviderError,
    ProviderRefused,
    ProviderTimeout,
    ProviderUnavailable,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallsDone,
    provider_for,
)
from tests.agents.fake_llm import FakeLLMServer, Reply, closed_port_url, json_error, ollama_line, ollama_stream

MODEL = "qwen2.5-coder:7b"
WRITE_FILE_TOOL = {
    "type": "function",
    "function": {
        "name": "write_file",
        "description": "Write a file in the card's workspace",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
}


def request_for(server_url: str, **overrides: Any) -> ChatRequest:
    values: dict[str, Any] = {
        "messages": [
            {"role": "system", "content": "You are the coder."},
            {"role": "user", "content": "Write hello.py"},
        ],
        "model": MODEL,
        "base_url": server_url,
        "temperature": 0.1,
        "seed": 7,
        "context_size": 16384,
        "timeout": 5.0,
    }
    values.update(overrides)
    return ChatRequest(**values)


def collect(request: ChatRequest) -> list[StreamEvent]:
    return list(OllamaProvider().stream(request))


def test_text_streams_as_deltas_in_order_with_counts(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(ollama_stream(["Hel", "lo, ", "world", "!"], prompt_eval_count=31, eval_count=5))

    events = collect(request_for(fake_llm.base_url))

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo, ", "world", "!"]
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert (finished.prompt_tokens, finished.completion_tokens, finished.finish_reason) == (31, 5, "stop")
    assert finished.metadata["total_duration"] == 4883583458
    assert sum(isinstance(e, Finished) for e in events) == 1
    assert not any(isinstance(e, ToolCallsDone) for e in events)


def test_request_body_sets_num_ctx_and_options(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(ollama_stream(["ok"]))

    collect(request_for(fake_llm.base_url, max_tokens=256))

    [received] = fake_llm.requests
    assert received.method == "POST"
    assert received.path == "/api/chat"
    body = received.json()
    assert body["model"] == MODEL
    assert body["stream"] is True
    assert body["options"] == {"temperature": 0.1, "num_ctx": 16384, "seed": 7, "num_predict": 256}
    assert body["messages"] == [
        {"role": "system", "content": "You are the coder."},
        {"role": "user", "content": "Write hello.py"},
    ]
    assert "format" not in body
    assert "tools" not in body
    assert "authorization" not in received.headers


def test_num_ctx_is_set_even_with_defaults(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(ollama_stream(["ok"]))

    collect(ChatRequest(messages=[{"role": "user", "content": "hi"}], model=MODEL, base_url=fake_llm.base_url))

    body = fake_llm.requests[0].json()
    assert body["options"]["num_ctx"] == 8192
    assert "seed" not in body["options"]
    assert "num_predict" not in body["options"]


def test_schema_and_tools_are_sent(fake_llm: FakeLLMServer) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    bare_tool = {"name": "read_file", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}
    fake_llm.queue(ollama_stream(['{"answer": "4"}']))

    collect(request_for(fake_llm.base_url, response_schema=schema, tools=[WRITE_FILE_TOOL, bare_tool]))

    body = fake_llm.requests[0].json()
    assert body["format"] == schema
    assert body["tools"] == [WRITE_FILE_TOOL, {"type": "function", "function": bare_tool}]


def test_tool_calls_are_reported_with_dict_arguments(fake_llm: FakeLLMServer) -> None:
    calls = [
        {"function": {"name": "write_file", "arguments": {"path": "hello.py", "content": "print('hi')\n"}}},
        {"id": "call_abc", "function": {"name": "add_comment", "arguments": {"text": "done"}}},
    ]
    fake_llm.queue(ollama_stream(["Writing it."], tool_calls=calls))

    events = collect(request_for(fake_llm.base_url, tools=[WRITE_FILE_TOOL]))

    [done] = [e for e in events if isinstance(e, ToolCallsDone)]
    assert done.calls == [
        ToolCall(name="write_file", arguments={"path": "hello.py", "content": "print('hi')\n"}, id="call_0"),
        ToolCall(name="add_comment", arguments={"text": "done"}, id="call_abc"),
    ]
    assert isinstance(events[-1], Finished)
    assert events.index(done) == len(events) - 2


def test_string_arguments_are_decoded_and_bad_ones_kept_raw(fake_llm: FakeLLMServer) -> None:
    calls = [
        {"function": {"name": "read_file", "arguments": '{"path": "a.txt"}'}},
        {"function": {"name": "read_file", "arguments": '{"path": '}},
    ]
    fake_llm.queue(ollama_stream([], tool_calls=calls))

    [done] = [e for e in collect(request_for(fake_llm.base_url)) if isinstance(e, ToolCallsDone)]

    assert done.calls[0].arguments == {"path": "a.txt"}
    assert done.calls[0].error is None
    assert done.calls[1].arguments == {}
    assert done.calls[1].raw_arguments == '{"path": '
    assert "not valid JSON" in (done.calls[1].error or "")


def test_thinking_is_reported_separately(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(ollama_stream(["4"], thinking=["two plus ", "two"]))

    events = collect(request_for(fake_llm.base_url))

    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == ["two plus ", "two"]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["4"]


def test_history_with_tool_calls_and_results_is_sent_in_ollama_shape(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(ollama_stream(["ok"]))
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": [ToolCall("read_file", {"path": "a"}, "call_1")]},
        {"role": "tool", "content": "file text", "tool_call_id": "call_1", "name": "read_file"},
    ]

    collect(request_for(fake_llm.base_url, messages=messages))

    sent = fake_llm.requests[0].json()["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "read_file", "arguments": {"path": "a"}}}],
    }
    assert sent[2] == {"role": "tool", "content": "file text", "tool_name": "read_file"}


def test_length_finish_and_missing_counts(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(ollama_stream(["cut"], done_reason="length", prompt_eval_count=None, eval_count=None))

    finished = collect(request_for(fake_llm.base_url))[-1]

    assert isinstance(finished, Finished)
    assert finished.finish_reason == "length"
    assert finished.prompt_tokens is None
    assert finished.completion_tokens is None


def test_base_url_trailing_slash(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(ollama_stream(["ok"]))

    collect(request_for(fake_llm.base_url + "/"))

    assert fake_llm.requests[0].path == "/api/chat"


def test_connection_refused_is_unavailable() -> None:
    url = closed_port_url()

    with pytest.raises(ProviderUnavailable) as info:
        collect(request_for(url))

    assert info.value.retryable is True
    assert url in str(info.value)
    assert MODEL in str(info.value)


def test_server_error_is_unavailable(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(json_error(500, "llama runner process has terminated"))

    with pytest.raises(ProviderUnavailable) as info:
        collect(request_for(fake_llm.base_url))

    assert info.value.status_code == 500
    assert "llama runner process has terminated" in str(info.value)


def test_unknown_model_is_refused_with_actionable_message(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(json_error(404, f'model "{MODEL}" not found, try pulling it first'))

    with pytest.raises(ProviderRefused) as info:
        collect(request_for(fake_llm.base_url))

    message = str(info.value)
    assert info.value.retryable is False
    assert f"model '{MODEL}' is not available at {fake_llm.base_url}" in message
    assert f"ollama pull {MODEL}" in message


def test_unsupported_tools_400_is_refused(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(json_error(400, f"registry.ollama.ai/library/{MODEL} does not support tools"))

    with pytest.raises(ProviderRefused, match="does not support tools"):
        collect(request_for(fake_llm.base_url, tools=[WRITE_FILE_TOOL]))


def test_stalled_stream_times_out(fake_llm: FakeLLMServer) -> None:
    reply = ollama_stream(["first", "never"])
    reply.pauses = {1: 5.0}
    fake_llm.queue(reply)
    events: list[StreamEvent] = []
    started = time.monotonic()

    with pytest.raises(ProviderTimeout) as info:
        for event in OllamaProvider().stream(request_for(fake_llm.base_url, timeout=0.4)):
            events.append(event)

    assert time.monotonic() - started < 3.0
    assert events == [TextDelta("first")]
    assert info.value.retryable is True
    assert fake_llm.base_url in str(info.value)


def test_malformed_line_is_bad_response(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(
        Reply(chunks=[ollama_line(MODEL, "ok"), b'{"model": "x", "message": {"content": "trunc\n'], chunked=True)
    )

    with pytest.raises(ProviderBadResponse, match="line 2 of the stream is not JSON") as info:
        collect(request_for(fake_llm.base_url))

    assert info.value.retryable is False


def test_error_line_mid_stream(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Reply(chunks=[ollama_line(MODEL, "partial"), b'{"error":"an unknown error was encountered"}\n']))

    with pytest.raises(ProviderBadResponse, match="an unknown error was encountered"):
        collect(request_for(fake_llm.base_url))


def test_error_line_model_not_found_is_refused(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Reply(status=200, chunks=[b'{"error":"model \\"nope\\" not found, try pulling it first"}\n']))

    with pytest.raises(ProviderRefused, match="not found"):
        collect(request_for(fake_llm.base_url))


def test_connection_dropped_mid_stream_is_unavailable(fake_llm: FakeLLMServer) -> None:
    reply = ollama_stream(["one", "two", "three"])
    reply.drop_after = 2
    fake_llm.queue(reply)
    events: list[StreamEvent] = []

    with pytest.raises(ProviderUnavailable, match="dropped"):
        for event in OllamaProvider().stream(request_for(fake_llm.base_url)):
            events.append(event)

    assert events == [TextDelta("one"), TextDelta("two")]


def test_stream_without_done_line_is_unavailable(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Reply(chunks=[ollama_line(MODEL, "one")], content_type="application/x-ndjson"))

    with pytest.raises(ProviderUnavailable, match="before its final 'done' line"):
        collect(request_for(fake_llm.base_url))


def test_oversized_answer_is_bad_response(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(ollama_stream(["x" * 4000, "y" * 4000]))

    with pytest.raises(ProviderBadResponse, match="larger than 5000 bytes"):
        collect(request_for(fake_llm.base_url, max_response_bytes=5000))


def test_non_object_line_is_bad_response(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Reply(chunks=[json.dumps([1, 2]).encode() + b"\n"]))

    with pytest.raises(ProviderBadResponse, match="not a JSON object"):
        collect(request_for(fake_llm.base_url))


def test_factory_returns_ollama_and_errors_share_base() -> None:
    assert isinstance(provider_for("ollama"), OllamaProvider)
    assert issubclass(ProviderTimeout, ProviderError)
    with pytest.raises(ValueError, match="unknown provider kind"):
        provider_for("gemini")
