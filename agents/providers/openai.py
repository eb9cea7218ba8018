"""OpenAI-compatible chat completions: POST {base}/v1/chat/completions, streamed as server-sent events.

One implementation for OpenAI itself, llama.cpp's server, vLLM and LM Studio, so it tolerates what they leave
out: usage, tool-call ids, the space after `data:`, the final `[DONE]` when a finish reason was already sent.

Constrained output: these servers take a JSON schema in one of two shapes of `response_format` (see
base.SCHEMA_SHAPES). With a response schema and no known shape, one stream() call tries json_schema, then
json_object when the server refuses the first before answering, and reports the shape that worked in
Finished.metadata["schema_shape"]; the caller remembers it and passes it as ChatRequest.schema_shape next
time, which is then the only shape sent. The provider itself keeps no state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from agents.providers.base import (
    SHAPE_JSON_OBJECT,
    SHAPE_JSON_SCHEMA,
    ChatRequest,
    Finished,
    ProviderBadResponse,
    ProviderRefused,
    ProviderUnavailable,
    ReasoningDelta,
    SchemaRefusal,
    SchemaUnsupported,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallsDone,
    decode_arguments,
    error_kwargs,
    error_text,
    http_timeout,
    is_schema_refusal,
    iter_lines_limited,
    map_transport_error,
    message_tool_calls,
    read_error_body,
    status_error,
    tool_spec,
)

SCHEMA_NAME = "orket_step"
# The response_format shapes in the order they are tried when the server's is not known yet.
DISCOVERY_ORDER = (SHAPE_JSON_SCHEMA, SHAPE_JSON_OBJECT)


def next_schema_shape(refused: str | None) -> str | None:
    """The shape to try after `refused` was refused (the first one for None); None when none is left."""
    if refused is None:
        return DISCOVERY_ORDER[0]
    if refused not in DISCOVERY_ORDER:
        return None
    position = DISCOVERY_ORDER.index(refused) + 1
    return DISCOVERY_ORDER[position] if position < len(DISCOVERY_ORDER) else None


def shapes_to_try(request: ChatRequest) -> list[str | None]:
    """The shapes one stream() call may send, in order: [None] without a schema, the remembered shape alone, or
    the discovery order. A remembered shape this provider does not know (another provider's) is found again."""
    if request.response_schema is None:
        return [None]
    if request.schema_shape in DISCOVERY_ORDER:
        return [request.schema_shape]
    shapes: list[str | None] = []
    shape = next_schema_shape(None)
    while shape is not None:
        shapes.append(shape)
        shape = next_schema_shape(shape)
    return shapes


def response_format(schema: dict[str, Any], shape: str) -> dict[str, Any]:
    """The `response_format` field carrying `schema` in `shape`.

    json_schema is sent without strict mode: OpenAI's strict mode wants every property required, and optional
    tool arguments are not; the servers that constrain locally (llama.cpp, vLLM, LM Studio) enforce the schema
    either way.
    """
    if shape == SHAPE_JSON_OBJECT:
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": False}}


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


def wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        wire: dict[str, Any] = {"role": message["role"], "content": message.get("content") or ""}
        calls = message_tool_calls(message)
        if calls:
            wire["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in calls
            ]
        if message.get("tool_call_id"):
            wire["tool_call_id"] = message["tool_call_id"]
        out.append(wire)
    return out


def request_body(request: ChatRequest, schema_shape: str | None = None) -> dict[str, Any]:
    """The JSON body; the response schema, when there is one, goes in `schema_shape` (default: json_schema)."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": wire_messages(request.messages),
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": request.temperature,
    }
    if request.seed is not None:
        body["seed"] = request.seed
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.tools:
        body["tools"] = [tool_spec(t) for t in request.tools]
    if request.response_schema is not None:
        body["response_format"] = response_format(request.response_schema, schema_shape or SHAPE_JSON_SCHEMA)
    return body


@dataclass
class _PartialCall:
    index: int
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def finish(self) -> ToolCall:
        raw = "".join(self.arguments)
        arguments, raw_arguments, error = decode_arguments(raw)
        return ToolCall(
            name=self.name,
            arguments=arguments,
            id=self.id or f"call_{self.index}",
            raw_arguments=raw_arguments,
            error=error,
        )


class _Assembler:
    """Collects the state of one streamed completion across chunks."""

    def __init__(self, request: ChatRequest, schema_shape: str | None) -> None:
        self.request = request
        self.calls: dict[int, _PartialCall] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.metadata: dict[str, Any] = {"schema_shape": schema_shape} if schema_shape else {}

    def feed(self, chunk: dict[str, Any]) -> Iterator[StreamEvent]:
        if "error" in chunk:
            detail = error_text(chunk)
            raise ProviderBadResponse(
                f"the server reported an error mid-stream: {detail}", detail=detail, **error_kwargs(self.request)
            )
        for key in ("id", "model", "system_fingerprint", "timings"):
            if chunk.get(key) is not None:
                self.metadata[key] = chunk[key]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise ProviderBadResponse("'choices' is not a list", **error_kwargs(self.request))
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise ProviderBadResponse("'delta' is not an object", **error_kwargs(self.request))
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                yield ReasoningDelta(reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                yield TextDelta(content)
            for fragment in delta.get("tool_calls") or []:
                self._tool_fragment(fragment)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])

    def _tool_fragment(self, fragment: Any) -> None:
        if not isinstance(fragment, dict):
            raise ProviderBadResponse(
                f"a tool-call delta is not an object: {fragment!r:.200}", **error_kwargs(self.request)
            )
        index = fragment.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            # Servers that leave out the index: a new id starts a new call, anything else continues the last one.
            new_id = fragment.get("id")
            starts_new = not self.calls or (new_id and new_id not in {c.id for c in self.calls.values()})
            index = max(self.calls, default=-1) + 1 if starts_new else max(self.calls)
        partial = self.calls.setdefault(index, _PartialCall(index=index))
        if fragment.get("id") and not partial.id:
            partial.id = str(fragment["id"])
        fn = fragment.get("function") or {}
        if not isinstance(fn, dict):
            raise ProviderBadResponse("a tool-call delta's 'function' is not an object", **error_kwargs(self.request))
        if fn.get("name") and not partial.name:
            partial.name = str(fn["name"])
        args = fn.get("arguments")
        if isinstance(args, str):
            partial.arguments.append(args)
        elif isinstance(args, dict):
            partial.arguments.append(json.dumps(args))

    def close(self) -> Iterator[StreamEvent]:
        if self.calls:
            yield ToolCallsDone([self.calls[i].finish() for i in sorted(self.calls)])
        usage = self.usage or {}
        metadata = dict(self.metadata)
        if self.usage is not None:
            metadata["usage"] = self.usage
        yield Finished(
            prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
            completion_tokens=_int_or_none(usage.get("completion_tokens")),
            finish_reason=self.finish_reason,
            metadata=metadata,
        )


class OpenAIProvider:
    kind = "openai"

    def __init__(self, *, transport: httpx.BaseTransport | None = None, trust_env: bool = True) -> None:
        self._transport = transport
        self._trust_env = trust_env

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        if not request.base_url:
            raise ProviderRefused("no base URL is configured", **error_kwargs(request))
        url = chat_url(request.base_url)
        headers = {"Accept": "text/event-stream"}
        if request.api_key:
            headers["Authorization"] = f"Bearer {request.api_key}"
        refusals: list[SchemaRefusal] = []
        try:
            with httpx.Client(
                timeout=http_timeout(request), transport=self._transport, trust_env=self._trust_env
            ) as client:
                for shape in shapes_to_try(request):
                    body = request_body(request, shape)
                    with client.stream("POST", url, json=body, headers=headers) as response:
                        if response.status_code < 400:
                            yield from self._read(response, request, shape)
                            return
                        refusals.append(self._refusal(response, request, shape))
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, request) from exc
        raise SchemaUnsupported(refusals, **error_kwargs(request))

    def _refusal(self, response: httpx.Response, request: ChatRequest, shape: str | None) -> SchemaRefusal:
        """The refusal of `shape` in this error answer; any other error is raised as it is."""
        detail = read_error_body(response)
        if shape is None or not is_schema_refusal(response.status_code, detail):
            raise status_error(response.status_code, detail, request, self.kind)
        return SchemaRefusal(shape, response.status_code, detail)

    def _read(self, response: httpx.Response, request: ChatRequest, shape: str | None) -> Iterator[StreamEvent]:
        assembler = _Assembler(request, shape)
        pending: list[str] = []  # data lines of an event not yet complete (multi-line `data:` events)
        for line in iter_lines_limited(response, request):
            if not line.strip():
                if pending:
                    raise ProviderBadResponse(
                        f"an event's data is not JSON: {' '.join(pending)[:200]!r}", **error_kwargs(request)
                    )
                continue
            if line.startswith(":"):
                continue  # SSE comment (keep-alive)
            field_name, _, value = line.partition(":")
            if field_name != "data":
                if field_name in ("event", "id", "retry"):
                    continue
                raise ProviderBadResponse(f"not a server-sent event line: {line[:200]!r}", **error_kwargs(request))
            value = value.removeprefix(" ")
            if not pending and value.strip() == "[DONE]":
                yield from assembler.close()
                return
            pending.append(value)
            try:
                chunk = json.loads("\n".join(pending))
            except ValueError:
                continue
            pending = []
            if not isinstance(chunk, dict):
                raise ProviderBadResponse(f"an event is not a JSON object: {line[:200]!r}", **error_kwargs(request))
            yield from assembler.feed(chunk)
        if pending:
            raise ProviderBadResponse(
                f"an event's data is not JSON: {' '.join(pending)[:200]!r}", **error_kwargs(request)
            )
        if assembler.finish_reason is None:
            raise ProviderUnavailable("the stream ended before a finish reason or [DONE]", **error_kwargs(request))
        yield from assembler.close()


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None
