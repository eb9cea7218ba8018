from __future__ import annotations

import gzip
import time
from typing import Any

import pytest

from agents.providers import (
    ChatRequest,
    Finished,
    OpenAIProvider,
    ProviderBadResponse,
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
from agents.providers.openai import chat_url
from tests.agents.fake_llm import FakeLLMServer, Reply, closed_port_url, json_error, openai_chunk, openai_stream, sse

MODEL = "gpt-4o-mini"
SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
    "additionalProperties": False,
}
READ_FILE_TOOL = {
    "type": "function",
    "function": {
        "name": "read_file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}


def request_for(base_url: str, **overrides: Any) -> ChatRequest:
    values: dict[str, Any] = {
        "messages": [{"role": "system", "content": "You are QA."}, {"role": "user", "content": "Review it."}],
        "model": MODEL,
        "base_url": base_url,
        "temperature": 0.0,
        "seed": 42,
        "max_tokens": 512,
        "timeout": 5.0,
    }
    values.update(overrides)
    return ChatRequest(**values)


def collect(request: ChatRequest) -> list[StreamEvent]:
    return list(OpenAIProvider().stream(request))


def test_text_deltas_in_order_and_usage_from_final_chunk(fake_llm: FakeLLMServer) -> None:
    usage = {"prompt_tokens": 57, "completion_tokens": 9, "total_tokens": 66}
    fake_llm.queue(openai_stream(["The ", "tests ", "pass."], usage=usage))

    events = collect(request_for(fake_llm.base_url))

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["The ", "tests ", "pass."]
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert (finished.prompt_tokens, finished.completion_tokens, finished.finish_reason) == (57, 9, "stop")
    assert finished.metadata["usage"] == usage
    assert finished.metadata["model"] == MODEL
    assert sum(isinstance(e, Finished) for e in events) == 1


def test_request_body_and_no_authorization_without_key(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(openai_stream(["ok"]))

    collect(request_for(fake_llm.base_url))

    [received] = fake_llm.requests
    assert received.path == "/v1/chat/completions"
    assert "authorization" not in received.headers
    body = received.json()
    assert body == {
        "model": MODEL,
        "messages": [{"role": "system", "content": "You are QA."}, {"role": "user", "content": "Review it."}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
        "seed": 42,
        "max_tokens": 512,
    }


def test_key_schema_and_tools_are_sent(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(openai_stream(['{"summary": "fine"}']))

    collect(request_for(fake_llm.base_url, api_key="sk-test-123", response_schema=SCHEMA, tools=[READ_FILE_TOOL]))

    received = fake_llm.requests[0]
    assert received.headers["authorization"] == "Bearer sk-test-123"
    body = received.json()
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "orket_step", "schema": SCHEMA, "strict": False},
    }
    assert body["tools"] == [READ_FILE_TOOL]


def test_base_url_already_ending_in_v1(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(openai_stream(["ok"]))

    collect(request_for(fake_llm.base_url + "/v1/"))

    assert fake_llm.requests[0].path == "/v1/chat/completions"
    assert chat_url("https://api.openai.com") == "https://api.openai.com/v1/chat/completions"
    assert chat_url("https://api.openai.com/v1") == "https://api.openai.com/v1/chat/completions"


def test_tool_call_deltas_assembled_by_index_across_chunks(fake_llm: FakeLLMServer) -> None:
    deltas = [
        [{"index": 0, "id": "call_A", "type": "function", "function": {"name": "read_file", "arguments": ""}}],
        [{"index": 0, "function": {"arguments": '{"pa'}}],
        [{"index": 1, "id": "call_B", "type": "function", "function": {"name": "add_comment", "arguments": ""}}],
        [{"index": 0, "function": {"arguments": 'th": "src/'}}],
        [{"index": 1, "function": {"arguments": '{"text": "a {brace} \\"quote\\""}'}}],
        [{"index": 0, "function": {"arguments": 'app.py"}'}}],
    ]
    usage = {"prompt_tokens": 100, "completion_tokens": 30, "total_tokens": 130}
    fake_llm.queue(openai_stream(tool_call_deltas=deltas, finish_reason="tool_calls", usage=usage))

    events = collect(request_for(fake_llm.base_url, tools=[READ_FILE_TOOL]))

    [done] = [e for e in events if isinstance(e, ToolCallsDone)]
    assert done.calls == [
        ToolCall(name="read_file", arguments={"path": "src/app.py"}, id="call_A"),
        ToolCall(name="add_comment", arguments={"text": 'a {brace} "quote"'}, id="call_B"),
    ]
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.finish_reason == "tool_calls"
    assert finished.prompt_tokens == 100


def test_invalid_tool_arguments_are_kept_raw(fake_llm: FakeLLMServer) -> None:
    deltas = [
        [{"index": 0, "function": {"name": "write_file", "arguments": '{"path": "a.py", "content": '}}],
        [{"index": 1, "function": {"name": "list_directory", "arguments": '["not", "an", "object"]'}}],
    ]
    fake_llm.queue(openai_stream(tool_call_deltas=deltas, finish_reason="tool_calls"))

    [done] = [e for e in collect(request_for(fake_llm.base_url)) if isinstance(e, ToolCallsDone)]

    broken, listed = done.calls
    assert broken.name == "write_file"
    assert broken.arguments == {}
    assert broken.raw_arguments == '{"path": "a.py", "content": '
    assert "not valid JSON" in (broken.error or "")
    assert broken.id == "call_0"  # llama.cpp and others may leave ids out
    assert listed.error is not None
    assert "must be a JSON object" in listed.error


def test_llama_cpp_style_no_space_no_usage_no_done(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(openai_stream(["a", "b"], space=False, done=False, model="local"))

    events = collect(request_for(fake_llm.base_url, model="local"))

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a", "b"]
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.prompt_tokens is None
    assert finished.completion_tokens is None
    assert finished.finish_reason == "stop"


def test_comments_and_event_lines_are_ignored(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(openai_stream(["x", "y"], comments=True))

    events = collect(request_for(fake_llm.base_url))

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["x", "y"]


def test_event_split_across_network_chunks_and_crlf(fake_llm: FakeLLMServer) -> None:
    whole = sse(openai_chunk({"content": "héllo"})).replace(b"\n", b"\r\n")
    cut = whole.index("é".encode()) + 1  # split inside a UTF-8 sequence too
    finish = sse(openai_chunk({}, finish_reason="stop"))
    fake_llm.queue(Reply(chunks=[whole[:5], whole[5:cut], whole[cut:], finish, sse("[DONE]")]))

    events = collect(request_for(fake_llm.base_url))

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["héllo"]


def test_reasoning_content_is_separate(fake_llm: FakeLLMServer) -> None:
    chunks = [
        sse(openai_chunk({"reasoning_content": "Check the diff."})),
        sse(openai_chunk({"content": "Approved."})),
        sse(openai_chunk({}, finish_reason="stop")),
        sse("[DONE]"),
    ]
    fake_llm.queue(Reply(chunks=chunks, content_type="text/event-stream"))

    events = collect(request_for(fake_llm.base_url))

    assert events[:2] == [ReasoningDelta("Check the diff."), TextDelta("Approved.")]


def test_history_with_tool_calls_is_sent_in_openai_shape(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(openai_stream(["ok"]))
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": [ToolCall("read_file", {"path": "a"}, "call_9")]},
        {"role": "tool", "content": "text", "tool_call_id": "call_9"},
    ]

    collect(request_for(fake_llm.base_url, messages=messages))

    sent = fake_llm.requests[0].json()["messages"]
    assert sent[1]["tool_calls"] == [
        {"id": "call_9", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a"}'}}
    ]
    assert sent[2] == {"role": "tool", "content": "text", "tool_call_id": "call_9"}


def test_connection_refused_is_unavailable() -> None:
    url = closed_port_url()

    with pytest.raises(ProviderUnavailable) as info:
        collect(request_for(url))

    assert url in str(info.value)
    assert info.value.retryable


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_unavailable(fake_llm: FakeLLMServer, status: int) -> None:
    fake_llm.queue(json_error(status, "upstream overloaded", openai_shape=True))

    with pytest.raises(ProviderUnavailable, match="upstream overloaded") as info:
        collect(request_for(fake_llm.base_url))

    assert info.value.status_code == status


def test_429_is_retryable(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(json_error(429, "Rate limit reached", openai_shape=True))

    with pytest.raises(ProviderUnavailable, match="busy"):
        collect(request_for(fake_llm.base_url))


def test_unknown_model_404_is_refused(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(json_error(404, "The model `gpt-9` does not exist", openai_shape=True))

    with pytest.raises(ProviderRefused) as info:
        collect(request_for(fake_llm.base_url, model="gpt-9"))

    message = str(info.value)
    assert f"model 'gpt-9' is not available at {fake_llm.base_url}" in message
    assert "does not exist" in message
    assert not info.value.retryable


def test_401_names_the_key_problem(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(json_error(401, "Incorrect API key provided", openai_shape=True))

    with pytest.raises(ProviderRefused, match="API key was rejected"):
        collect(request_for(fake_llm.base_url, api_key="sk-wrong"))


def test_stall_between_chunks_times_out(fake_llm: FakeLLMServer) -> None:
    reply = openai_stream(["one", "two"])
    reply.pauses = {2: 5.0}
    fake_llm.queue(reply)
    seen: list[StreamEvent] = []
    started = time.monotonic()

    with pytest.raises(ProviderTimeout, match=r"sent nothing for 0\.4s"):
        for event in OpenAIProvider().stream(request_for(fake_llm.base_url, timeout=0.4)):
            seen.append(event)

    assert time.monotonic() - started < 3.0
    assert seen == [TextDelta("one")]


def test_malformed_event_is_bad_response(fake_llm: FakeLLMServer) -> None:
    chunks = [sse(openai_chunk({"content": "ok"})), b'data: {"choices": [{"delta": \n\n', sse("[DONE]")]
    fake_llm.queue(Reply(chunks=chunks, content_type="text/event-stream"))

    with pytest.raises(ProviderBadResponse, match="not JSON"):
        collect(request_for(fake_llm.base_url))


def test_error_event_mid_stream_is_bad_response(fake_llm: FakeLLMServer) -> None:
    chunks = [
        sse(openai_chunk({"content": "ok"})),
        sse({"error": {"message": "context length exceeded", "code": 400}}),
    ]
    fake_llm.queue(Reply(chunks=chunks, content_type="text/event-stream"))

    with pytest.raises(ProviderBadResponse, match="context length exceeded"):
        collect(request_for(fake_llm.base_url))


def test_connection_dropped_mid_stream(fake_llm: FakeLLMServer) -> None:
    reply = openai_stream(["one", "two", "three"])
    reply.drop_after = 2
    fake_llm.queue(reply)

    with pytest.raises(ProviderUnavailable):
        collect(request_for(fake_llm.base_url))


def test_stream_cut_before_finish_is_unavailable(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Reply(chunks=[sse(openai_chunk({"content": "half"}))], content_type="text/event-stream"))

    with pytest.raises(ProviderUnavailable, match="ended before"):
        collect(request_for(fake_llm.base_url))


def test_factory_returns_openai() -> None:
    assert isinstance(provider_for("openai"), OpenAIProvider)


def test_gzip_encoded_stream_is_decoded(fake_llm: FakeLLMServer) -> None:
    body = b"".join(openai_stream(["com", "pressed"]).chunks)
    packed = gzip.compress(body)
    third = len(packed) // 3
    fake_llm.queue(
        Reply(
            chunks=[packed[:third], packed[third : 2 * third], packed[2 * third :]],
            content_type="text/event-stream",
            headers={"Content-Encoding": "gzip"},
        )
    )

    events = collect(request_for(fake_llm.base_url))

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["com", "pressed"]


def test_tool_call_deltas_without_index_follow_ids(fake_llm: FakeLLMServer) -> None:
    deltas = [
        [{"id": "call_1", "function": {"name": "read_file", "arguments": '{"path":'}}],
        [{"function": {"arguments": ' "a"}'}}],
        [{"id": "call_2", "function": {"name": "read_file", "arguments": {"path": "b"}}}],
    ]
    fake_llm.queue(openai_stream(["Reading both."], tool_call_deltas=deltas, finish_reason="tool_calls"))

    events = collect(request_for(fake_llm.base_url))

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Reading both."]
    [done] = [e for e in events if isinstance(e, ToolCallsDone)]
    assert done.calls == [
        ToolCall(name="read_file", arguments={"path": "a"}, id="call_1"),
        ToolCall(name="read_file", arguments={"path": "b"}, id="call_2"),
    ]
