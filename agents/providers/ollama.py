"""Ollama's native chat API: POST {base}/api/chat, streamed as NDJSON lines.

A response schema always goes in Ollama's `format` (shape "ollama_format", reported in Finished.metadata). An
Ollama too old to take a schema there (before 0.5 `format` was only "json") refuses with SchemaUnsupported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx

from agents.providers.base import (
    SHAPE_OLLAMA_FORMAT,
    ChatRequest,
    Finished,
    ProviderBadResponse,
    ProviderError,
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

DEFAULT_BASE_URL = "http://127.0.0.1:11434"


def chat_url(base_url: str) -> str:
    return (base_url or DEFAULT_BASE_URL).rstrip("/") + "/api/chat"


def wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        wire: dict[str, Any] = {"role": message["role"], "content": message.get("content") or ""}
        calls = message_tool_calls(message)
        if calls:
            wire["tool_calls"] = [{"function": {"name": c.name, "arguments": c.arguments}} for c in calls]
        tool_name = message.get("tool_name") or message.get("name")
        if message["role"] == "tool" and tool_name:
            wire["tool_name"] = tool_name
        out.append(wire)
    return out


def request_body(request: ChatRequest) -> dict[str, Any]:
    options: dict[str, Any] = {"temperature": request.temperature, "num_ctx": int(request.context_size)}
    if request.seed is not None:
        options["seed"] = request.seed
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    body: dict[str, Any] = {
        "model": request.model,
        "messages": wire_messages(request.messages),
        "stream": True,
        "options": options,
    }
    if request.response_schema is not None:
        body["format"] = request.response_schema
    if request.tools:
        body["tools"] = [tool_spec(t) for t in request.tools]
    return body


class OllamaProvider:
    kind = "ollama"

    def __init__(self, *, transport: httpx.BaseTransport | None = None, trust_env: bool = True) -> None:
        self._transport = transport
        self._trust_env = trust_env

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        if not request.base_url:
            request = replace(request, base_url=DEFAULT_BASE_URL)
        url = chat_url(request.base_url)
        body = request_body(request)
        try:
            with (
                httpx.Client(timeout=http_timeout(request), transport=self._transport, trust_env=self._trust_env) as c,
                c.stream("POST", url, json=body) as response,
            ):
                if response.status_code >= 400:
                    raise self._error(response, request)
                yield from self._read(response, request)
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, request) from exc

    def _error(self, response: httpx.Response, request: ChatRequest) -> ProviderError:
        detail = read_error_body(response)
        status = response.status_code
        refused = is_schema_refusal(status, detail) or (status == 400 and "format" in detail)
        if request.response_schema is not None and refused:
            return SchemaUnsupported([SchemaRefusal(SHAPE_OLLAMA_FORMAT, status, detail)], **error_kwargs(request))
        return status_error(status, detail, request, self.kind)

    def _read(self, response: httpx.Response, request: ChatRequest) -> Iterator[StreamEvent]:
        calls: list[ToolCall] = []
        for number, line in enumerate(iter_lines_limited(response, request), start=1):
            if not line.strip():
                continue
            try:
                chunk = json.loads(line)
            except ValueError as exc:
                raise ProviderBadResponse(
                    f"line {number} of the stream is not JSON ({exc}): {line[:200]!r}", **error_kwargs(request)
                ) from exc
            if not isinstance(chunk, dict):
                raise ProviderBadResponse(
                    f"line {number} of the stream is not a JSON object: {line[:200]!r}", **error_kwargs(request)
                )
            if "error" in chunk:
                detail = error_text(chunk)
                cls = ProviderRefused if "not found" in detail or "does not support" in detail else ProviderBadResponse
                raise cls(f"the server reported an error mid-stream: {detail}", detail=detail, **error_kwargs(request))
            message = chunk.get("message") or {}
            if not isinstance(message, dict):
                raise ProviderBadResponse(f"line {number}: 'message' is not an object", **error_kwargs(request))
            thinking = message.get("thinking")
            if isinstance(thinking, str) and thinking:
                yield ReasoningDelta(thinking)
            content = message.get("content")
            if isinstance(content, str) and content:
                yield TextDelta(content)
            for raw in message.get("tool_calls") or []:
                calls.append(self._tool_call(raw, len(calls), request))
            if chunk.get("done") is True:
                if calls:
                    yield ToolCallsDone(calls)
                metadata = {k: v for k, v in chunk.items() if k not in ("message", "done")}
                if request.response_schema is not None:
                    metadata["schema_shape"] = SHAPE_OLLAMA_FORMAT
                yield Finished(
                    prompt_tokens=_int_or_none(chunk.get("prompt_eval_count")),
                    completion_tokens=_int_or_none(chunk.get("eval_count")),
                    finish_reason=chunk.get("done_reason") or "stop",
                    metadata=metadata,
                )
                return
        raise ProviderUnavailable("the stream ended before its final 'done' line", **error_kwargs(request))

    @staticmethod
    def _tool_call(raw: Any, position: int, request: ChatRequest) -> ToolCall:
        if not isinstance(raw, dict) or not isinstance(raw.get("function"), dict):
            raise ProviderBadResponse(f"a tool call is not an object: {str(raw)[:200]}", **error_kwargs(request))
        fn = raw["function"]
        arguments, raw_arguments, error = decode_arguments(fn.get("arguments"))
        return ToolCall(
            name=str(fn.get("name") or ""),
            arguments=arguments,
            id=str(raw.get("id") or f"call_{position}"),
            raw_arguments=raw_arguments,
            error=error,
        )


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return None
