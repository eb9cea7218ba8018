"""Constrained output: the three ways servers take a JSON schema, found against fakes that take only one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from agents.providers import (
    ChatRequest,
    Finished,
    OllamaProvider,
    OpenAIProvider,
    ProviderRefused,
    ProviderUnavailable,
    Retrying,
    RetryPolicy,
    SchemaUnsupported,
    StreamEvent,
    TextDelta,
    next_schema_shape,
    stream_with_retry,
)
from agents.providers.base import is_schema_refusal
from agents.providers.openai import shapes_to_try
from agents.step_schema import step_schema
from agents.toolcalls import parse_tool_calls
from tests.agents.fake_llm import (
    FakeLLMServer,
    Reply,
    SchemaShapeServer,
    json_error,
    llama_cpp_python_refusal,
    llama_server_refusal,
    lm_studio_refusal,
    ollama_stream,
    openai_stream,
    vllm_refusal,
)

MODEL = "qwen2.5-coder-0.5b-instruct"
CODER_TOOLS = ["read_file", "write_file", "edit_file", "search_code", "update_card_status"]
SCHEMA = step_schema(CODER_TOOLS, max_tokens=512)
ANSWER = json.dumps({"tool": "read_file", "args": {"path": "services/greeting.py"}})
MESSAGES = [{"role": "system", "content": "You are the coder."}, {"role": "user", "content": "Next step."}]


def request_for(base_url: str, **overrides: Any) -> ChatRequest:
    values: dict[str, Any] = {
        "messages": MESSAGES,
        "model": MODEL,
        "base_url": base_url,
        "temperature": 0.0,
        "seed": 7,
        "max_tokens": 512,
        "timeout": 5.0,
        "response_schema": SCHEMA,
    }
    values.update(overrides)
    return ChatRequest(**values)


def collect(request: ChatRequest) -> list[StreamEvent]:
    return list(OpenAIProvider().stream(request))


def shapes_sent(fake: FakeLLMServer) -> list[str]:
    return [body["response_format"]["type"] for body in (r.json() for r in fake.requests)]


def finished(events: list[StreamEvent]) -> Finished:
    last = events[-1]
    assert isinstance(last, Finished)
    return last


def text(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# Each fake takes one shape and refuses the other the way that server does.
SERVERS: dict[str, tuple[str, Callable[[str], Reply]]] = {
    "llama-server": ("json_schema", llama_server_refusal),
    "lm-studio": ("json_schema", lm_studio_refusal),
    "llama-server-before-json-schema": ("json_object", llama_server_refusal),
    "llama-server-answering-500": ("json_object", lambda shape: llama_server_refusal(shape, status=500)),
    "vllm-before-json-schema": ("json_object", vllm_refusal),
    "llama-cpp-python": ("json_object", llama_cpp_python_refusal),
}


@pytest.mark.parametrize("server", list(SERVERS))
def test_discovery_finds_the_shape_the_server_takes_and_reports_it(server: str) -> None:
    accepts, refuse = SERVERS[server]
    responder = SchemaShapeServer(accepts, refuse, answer=ANSWER)
    with FakeLLMServer(responder=responder) as fake:
        events = collect(request_for(fake.base_url))

    assert finished(events).metadata["schema_shape"] == accepts
    expected = ["json_schema"] if accepts == "json_schema" else ["json_schema", "json_object"]
    assert shapes_sent(fake) == expected
    assert responder.schemas == [SCHEMA]
    [call] = parse_tool_calls(text(events)).calls
    assert (call.name, call.arguments) == ("read_file", {"path": "services/greeting.py"})
    assert fake.errors == []


@pytest.mark.parametrize("server", list(SERVERS))
def test_a_remembered_shape_is_the_only_request(server: str) -> None:
    accepts, refuse = SERVERS[server]
    with FakeLLMServer(responder=SchemaShapeServer(accepts, refuse, answer=ANSWER)) as fake:
        events = collect(request_for(fake.base_url, schema_shape=accepts))

    assert shapes_sent(fake) == [accepts]
    assert finished(events).metadata["schema_shape"] == accepts


def test_a_refused_remembered_shape_is_not_rediscovered() -> None:
    responder = SchemaShapeServer("json_schema", lm_studio_refusal)
    with FakeLLMServer(responder=responder) as fake, pytest.raises(SchemaUnsupported) as caught:
        collect(request_for(fake.base_url, schema_shape="json_object"))

    assert shapes_sent(fake) == ["json_object"]
    assert [(r.shape, r.status) for r in caught.value.refusals] == [("json_object", 400)]
    assert caught.value.retryable is False


def test_a_shape_of_another_provider_is_found_again() -> None:
    with FakeLLMServer(responder=SchemaShapeServer("json_object", llama_cpp_python_refusal, ANSWER)) as fake:
        events = collect(request_for(fake.base_url, schema_shape="ollama_format"))

    assert shapes_sent(fake) == ["json_schema", "json_object"]
    assert finished(events).metadata["schema_shape"] == "json_object"


def test_both_shapes_refused_names_both_attempts_and_what_the_server_said() -> None:
    def refuse(shape: str) -> Reply:
        return llama_cpp_python_refusal(shape) if shape == "json_schema" else llama_server_refusal(shape)

    with FakeLLMServer(responder=SchemaShapeServer(None, refuse)) as fake, pytest.raises(SchemaUnsupported) as caught:
        collect(request_for(fake.base_url))

    error = caught.value
    assert isinstance(error, ProviderRefused)
    assert shapes_sent(fake) == ["json_schema", "json_object"]
    assert [(r.shape, r.status) for r in error.refusals] == [("json_schema", 422), ("json_object", 400)]
    message = str(error)
    assert "json_schema refused with HTTP 422" in message
    assert "Input should be 'text' or 'json_object'" in message
    assert 'json_object refused with HTTP 400: response_format type must be one of "text"' in message
    assert MODEL in message and fake.base_url in message


def test_a_schema_refusal_is_not_retried_as_an_outage() -> None:
    with FakeLLMServer(responder=SchemaShapeServer(None, vllm_refusal)) as fake:
        policy = RetryPolicy(attempts=3, base_delay=0.0)
        with pytest.raises(SchemaUnsupported):
            list(stream_with_retry(OpenAIProvider(), request_for(fake.base_url), policy, sleep=lambda _: None))

    assert len(fake.requests) == 2


def test_an_outage_during_discovery_is_still_an_outage_and_retried() -> None:
    with FakeLLMServer(responder=SchemaShapeServer("json_object", llama_cpp_python_refusal, ANSWER)) as fake:
        fake.queue(json_error(500, "llama runner process has terminated: signal: killed"))
        policy = RetryPolicy(attempts=3, base_delay=0.0)
        events = list(stream_with_retry(OpenAIProvider(), request_for(fake.base_url), policy, sleep=lambda _: None))

    [retry] = [e for e in events if isinstance(e, Retrying)]
    assert isinstance(retry.error, ProviderUnavailable) and retry.error.status_code == 500
    assert shapes_sent(fake) == ["json_schema", "json_schema", "json_object"]
    assert finished([e for e in events if not isinstance(e, Retrying)]).metadata["schema_shape"] == "json_object"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (json_error(401, "invalid api key for response_format", openai_shape=True), ProviderRefused),
        (json_error(404, "model not found", openai_shape=True), ProviderRefused),
        (json_error(429, "too many requests with a json_schema", openai_shape=True), ProviderUnavailable),
        (json_error(503, "loading model"), ProviderUnavailable),
        (json_error(400, "the request exceeds the available context size", openai_shape=True), ProviderRefused),
    ],
)
def test_other_errors_stop_discovery_as_they_are(reply: Reply, error: type[Exception]) -> None:
    with FakeLLMServer() as fake:
        fake.queue(reply)
        with pytest.raises(error) as caught:
            collect(request_for(fake.base_url))

    assert not isinstance(caught.value, SchemaUnsupported)
    assert len(fake.requests) == 1


def test_a_500_without_a_schema_is_an_outage_whatever_it_says() -> None:
    with FakeLLMServer() as fake:
        fake.queue(llama_server_refusal("json_schema", status=500))
        with pytest.raises(ProviderUnavailable):
            collect(request_for(fake.base_url, response_schema=None))

    assert len(fake.requests) == 1


# ---------------------------------------------------------------------------------------------------------------
# The exact bodies


def expected_body(response_format: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
        "seed": 7,
        "max_tokens": 512,
    }
    if response_format is not None:
        body["response_format"] = response_format
    return body


def test_the_bodies_of_a_discovery_are_exactly_the_two_shapes() -> None:
    with FakeLLMServer(responder=SchemaShapeServer("json_object", llama_cpp_python_refusal, ANSWER)) as fake:
        collect(request_for(fake.base_url))

    first, second = (r.json() for r in fake.requests)
    assert first == expected_body(
        {"type": "json_schema", "json_schema": {"name": "orket_step", "schema": SCHEMA, "strict": False}}
    )
    assert second == expected_body({"type": "json_object", "schema": SCHEMA})
    assert [r.path for r in fake.requests] == ["/v1/chat/completions"] * 2


def test_no_schema_no_response_format_and_no_shape_reported(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(openai_stream(["hello"]))

    events = collect(request_for(fake_llm.base_url, response_schema=None, schema_shape="json_object"))

    assert fake_llm.requests[0].json() == expected_body(None)
    assert "schema_shape" not in finished(events).metadata


def test_the_step_schema_sent_is_a_valid_schema_the_answer_satisfies() -> None:
    responder = SchemaShapeServer("json_schema", llama_server_refusal, answer=ANSWER)
    with FakeLLMServer(responder=responder) as fake:
        events = collect(request_for(fake.base_url))

    [received] = responder.schemas
    jsonschema.Draft202012Validator.check_schema(received)
    jsonschema.validate(json.loads(text(events)), received)
    assert len(fake.requests) == 1


# ---------------------------------------------------------------------------------------------------------------
# Ollama: always `format`


def test_ollama_sends_the_schema_as_format_and_reports_the_shape(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(ollama_stream([ANSWER], model=MODEL))

    events = list(OllamaProvider().stream(request_for(fake_llm.base_url, schema_shape="json_schema")))

    [received] = fake_llm.requests
    assert received.path == "/api/chat"
    assert received.json() == {
        "model": MODEL,
        "messages": MESSAGES,
        "stream": True,
        "options": {"temperature": 0.0, "num_ctx": 8192, "seed": 7, "num_predict": 512},
        "format": SCHEMA,
    }
    assert finished(events).metadata["schema_shape"] == "ollama_format"


def test_ollama_without_a_schema_reports_no_shape(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(ollama_stream(["hi"], model=MODEL))

    events = list(OllamaProvider().stream(request_for(fake_llm.base_url, response_schema=None)))

    assert "format" not in fake_llm.requests[0].json()
    assert "schema_shape" not in finished(events).metadata


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "json: cannot unmarshal object into Go struct field ChatRequest.format of type string"),
        (500, "invalid JSON schema in format"),
    ],
)
def test_ollama_that_cannot_take_the_schema_refuses_it(fake_llm: FakeLLMServer, status: int, message: str) -> None:
    fake_llm.queue(json_error(status, message))

    with pytest.raises(SchemaUnsupported) as caught:
        list(OllamaProvider().stream(request_for(fake_llm.base_url)))

    assert [(r.shape, r.status, r.detail) for r in caught.value.refusals] == [("ollama_format", status, message)]


def test_ollama_outage_with_a_schema_is_still_an_outage(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(json_error(500, "llama runner process has terminated"))

    with pytest.raises(ProviderUnavailable):
        list(OllamaProvider().stream(request_for(fake_llm.base_url)))


# ---------------------------------------------------------------------------------------------------------------
# The pure rules


def test_next_schema_shape() -> None:
    assert next_schema_shape(None) == "json_schema"
    assert next_schema_shape("json_schema") == "json_object"
    assert next_schema_shape("json_object") is None
    assert next_schema_shape("ollama_format") is None


def test_shapes_to_try() -> None:
    assert shapes_to_try(ChatRequest(messages=[], model="m")) == [None]
    assert shapes_to_try(ChatRequest(messages=[], model="m", response_schema=SCHEMA)) == ["json_schema", "json_object"]
    remembered = ChatRequest(messages=[], model="m", response_schema=SCHEMA, schema_shape="json_object")
    assert shapes_to_try(remembered) == ["json_object"]


@pytest.mark.parametrize(
    ("status", "detail", "refused"),
    [
        (400, 'response_format type must be one of "text" or "json_object", but got: json_schema', True),
        (422, "[{'loc': ['body', 'response_format', 'type'], 'msg': \"Input should be 'text'\"}]", True),
        (500, "JSON schema conversion failed: unsupported keyword", True),
        (400, "The provided JSON schema contains features not supported by xgrammar.", True),
        (500, "llama runner process has terminated", False),
        (400, "the request exceeds the available context size", False),
        (401, "invalid key for response_format", False),
        (429, "json_schema rate limit", False),
        (503, "schema service unavailable", False),
    ],
)
def test_is_schema_refusal(status: int, detail: str, refused: bool) -> None:
    assert is_schema_refusal(status, detail) is refused
