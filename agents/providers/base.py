"""The common interface of the LLM providers: the request, the stream events and the errors.

Pure Python plus httpx; nothing here imports Django, so providers can be tested without a database.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

# Anything bigger than this from one answer is treated as a broken server, not as model output.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# How much of an error body is read to build a message.
ERROR_BODY_LIMIT = 64 * 1024

# The ways servers take a JSON schema for constrained output (ChatRequest.schema_shape):
#   json_schema:   response_format {"type": "json_schema", "json_schema": {"name", "schema"}} (OpenAI, vLLM,
#                  LM Studio, llama.cpp's llama-server)
#   json_object:   response_format {"type": "json_object", "schema": ...} (llama-cpp-python's server)
#   ollama_format: Ollama's "format": schema
SHAPE_JSON_SCHEMA = "json_schema"
SHAPE_JSON_OBJECT = "json_object"
SHAPE_OLLAMA_FORMAT = "ollama_format"
SCHEMA_SHAPES = (SHAPE_JSON_SCHEMA, SHAPE_JSON_OBJECT, SHAPE_OLLAMA_FORMAT)
# What a server's error says when it refuses the schema or the way it was sent, rather than failing otherwise.
_SCHEMA_REFUSAL_WORDS = re.compile(
    r"response_format|json_schema|json_object|schema|grammar|guided|structured output|xgrammar|outlines",
    re.IGNORECASE,
)
SCHEMA_REFUSAL_STATUSES = frozenset({400, 422, 500})


@dataclass(frozen=True)
class ToolCall:
    """One tool call requested by the model.

    `arguments` is always a dict. When the model sent arguments that are not a JSON object, `arguments` is
    empty, the text the model sent is kept in `raw_arguments` and `error` says what was wrong.
    """

    name: str
    arguments: dict[str, Any]
    id: str
    raw_arguments: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    """Reasoning text sent in a separate field (Ollama `thinking`, OpenAI-compatible `reasoning_content`)."""

    text: str


@dataclass(frozen=True)
class ToolCallsDone:
    calls: list[ToolCall]


@dataclass(frozen=True)
class Finished:
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


StreamEvent = TextDelta | ReasoningDelta | ToolCallsDone | Finished


@dataclass
class ChatRequest:
    """Everything a provider needs for one model call.

    messages: dicts with `role` and `content`, optionally `tool_calls` (ToolCall objects or dicts with `name`,
    `arguments` and `id`) on assistant messages and `tool_call_id` on tool messages.
    tools: JSON-schema function specs, either `{"type": "function", "function": {...}}` or the bare
    `{"name", "description", "parameters"}`.
    timeout: seconds allowed between two chunks of the answer (and for sending the request).
    response_schema: a JSON schema the answer must follow (constrained output), or None.
    schema_shape: how the server takes the schema (one of SCHEMA_SHAPES), when known from an earlier answer's
    Finished.metadata["schema_shape"]; None lets the OpenAI provider find out. Ollama always uses its `format`.
    """

    messages: list[dict[str, Any]]
    model: str
    base_url: str = ""
    temperature: float = 0.2
    seed: int | None = None
    context_size: int = 8192
    max_tokens: int | None = None
    timeout: float = 120.0
    connect_timeout: float = 10.0
    tools: list[dict[str, Any]] | None = None
    response_schema: dict[str, Any] | None = None
    schema_shape: str | None = None
    api_key: str | None = None
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


class Provider(Protocol):
    kind: str

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]: ...


# ---------------------------------------------------------------------------------------------------------------
# Errors


class ProviderError(Exception):
    """Base of all provider failures. `retryable` says whether trying again later may help."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        base_url: str = "",
        model: str = "",
        status_code: int | None = None,
        detail: str = "",
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.status_code = status_code
        self.detail = detail
        where = []
        if model:
            where.append(f"model '{model}'")
        if base_url:
            where.append(f"at {base_url}")
        full = f"{message} ({' '.join(where)})" if where else message
        super().__init__(full)
        self.message = full


class ProviderTimeout(ProviderError):
    retryable = True


class ProviderUnavailable(ProviderError):
    """The server could not be reached, dropped the connection, was overloaded (429) or failed (5xx)."""

    retryable = True


class ProviderBadResponse(ProviderError):
    """The server answered something that is not the protocol (malformed stream, error object mid-stream)."""

    retryable = False


class ProviderRefused(ProviderError):
    """The server refused the request (4xx: bad key, unknown model, unsupported option). Fix, do not retry."""

    retryable = False


@dataclass(frozen=True)
class SchemaRefusal:
    """One shape of the response schema that the server refused, with what it said."""

    shape: str
    status: int
    detail: str

    def __str__(self) -> str:
        said = f": {self.detail}" if self.detail else ""
        return f"{self.shape} refused with HTTP {self.status}{said}"


class SchemaUnsupported(ProviderRefused):
    """The server refused the response schema in every shape tried.

    Not retried: the profile needs constrained output switched off, or a server that takes a JSON schema. A
    remembered shape that is refused should be forgotten, so the next request finds the shape again.
    """

    def __init__(self, refusals: Sequence[SchemaRefusal], *, base_url: str = "", model: str = "") -> None:
        self.refusals = list(refusals)
        tried = "; ".join(str(refusal) for refusal in self.refusals)
        super().__init__(
            f"the server does not take the JSON schema for constrained output in any shape tried ({tried}); "
            "switch constrained output off for this profile or use a server that supports it",
            base_url=base_url,
            model=model,
            status_code=self.refusals[-1].status if self.refusals else None,
            detail=tried,
        )


def is_schema_refusal(status: int, detail: str) -> bool:
    """Whether an error answer to a request with a response schema refuses the schema (or its shape).

    Servers say so with 400 (llama-server, vLLM), 422 (llama-cpp-python's request validation) or 500 (older
    servers whose schema conversion throws), always naming the schema or response_format. Anything else (a
    bad key, an unknown model, an overloaded or crashed server) is not a refusal of the schema.
    """
    return status in SCHEMA_REFUSAL_STATUSES and bool(_SCHEMA_REFUSAL_WORDS.search(detail))


# ---------------------------------------------------------------------------------------------------------------
# Helpers shared by the HTTP providers


def http_timeout(request: ChatRequest) -> httpx.Timeout:
    return httpx.Timeout(
        connect=request.connect_timeout,
        read=request.timeout,
        write=request.timeout,
        pool=request.connect_timeout,
    )


def error_kwargs(request: ChatRequest) -> dict[str, Any]:
    return {"base_url": request.base_url, "model": request.model}


def map_transport_error(exc: httpx.HTTPError, request: ChatRequest) -> ProviderError:
    """Turn an httpx exception into the matching ProviderError."""
    kw = error_kwargs(request)
    if isinstance(exc, httpx.ConnectTimeout):
        return ProviderTimeout(f"connecting took longer than {request.connect_timeout:g}s", **kw)
    if isinstance(exc, httpx.ReadTimeout):
        return ProviderTimeout(f"the server sent nothing for {request.timeout:g}s", **kw)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"timed out ({type(exc).__name__})", **kw)
    if isinstance(exc, httpx.ConnectError):
        return ProviderUnavailable(f"cannot connect to the server: {exc}", **kw)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ProviderRefused(f"the base URL is not usable: {exc}", **kw)
    if isinstance(exc, httpx.DecodingError):
        return ProviderBadResponse(f"the answer could not be decoded: {exc}", **kw)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return ProviderUnavailable(f"the connection was dropped: {exc}", **kw)
    return ProviderUnavailable(f"HTTP transport failed: {type(exc).__name__}: {exc}", **kw)


def read_error_body(response: httpx.Response) -> str:
    """Read at most ERROR_BODY_LIMIT bytes of an error answer and return its most useful text."""
    data = b""
    try:
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= ERROR_BODY_LIMIT:
                break
    except httpx.HTTPError:
        pass
    text = data[:ERROR_BODY_LIMIT].decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:2000]
    return error_text(parsed) or text[:2000]


def error_text(payload: Any) -> str:
    """The message inside the error objects servers send: {"error": "..."} or {"error": {"message": "..."}}."""
    if isinstance(payload, Mapping):
        err = payload.get("error", payload.get("detail", payload.get("message")))
        if isinstance(err, str):
            return err
        if isinstance(err, Mapping):
            msg = err.get("message")
            if isinstance(msg, str):
                return msg
            return json.dumps(err)[:2000]
        if err is not None:
            return str(err)[:2000]
    return ""


def status_error(status: int, detail: str, request: ChatRequest, provider: str) -> ProviderError:
    """The ProviderError for an HTTP error status, with a message a person can act on."""
    kw = error_kwargs(request) | {"status_code": status, "detail": detail}
    said = f": {detail}" if detail else ""
    if status == 404:
        hint = f"pull it first (ollama pull {request.model})" if provider == "ollama" else "check the model name"
        return ProviderRefused(
            f"model '{request.model}' is not available at {request.base_url}: {hint} (HTTP 404{said})", **kw
        )
    if status in (401, 403):
        key = "the API key was rejected" if request.api_key else "the server wants an API key and none is configured"
        return ProviderRefused(f"{key} (HTTP {status}{said})", **kw)
    if status in (408, 429):
        return ProviderUnavailable(f"the server is busy (HTTP {status}{said})", **kw)
    if status >= 500:
        return ProviderUnavailable(f"the server failed (HTTP {status}{said})", **kw)
    return ProviderRefused(f"the server refused the request (HTTP {status}{said})", **kw)


def iter_lines_limited(response: httpx.Response, request: ChatRequest) -> Iterator[str]:
    """Yield the lines of a streamed body, decoded as UTF-8, without line endings.

    Stops with ProviderBadResponse when the body grows past `request.max_response_bytes`.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer = ""
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > request.max_response_bytes:
            raise ProviderBadResponse(
                f"the answer is larger than {request.max_response_bytes} bytes", **error_kwargs(request)
            )
        buffer += decoder.decode(chunk)
        if "\n" not in buffer:
            continue
        *lines, buffer = buffer.split("\n")
        for line in lines:
            yield line.rstrip("\r")
    buffer += decoder.decode(b"", final=True)
    if buffer:
        yield buffer.rstrip("\r")


def tool_spec(tool: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise a tool spec to the `{"type": "function", "function": {...}}` shape both APIs accept."""
    if tool.get("type") == "function" and isinstance(tool.get("function"), Mapping):
        return dict(tool)
    return {"type": "function", "function": dict(tool)}


def message_tool_calls(message: Mapping[str, Any]) -> list[ToolCall]:
    """The tool calls of an assistant message, whatever shape the caller gave them in."""
    calls: list[ToolCall] = []
    for i, item in enumerate(message.get("tool_calls") or []):
        if isinstance(item, ToolCall):
            calls.append(item)
            continue
        if not isinstance(item, Mapping):
            continue
        fn = item.get("function") if isinstance(item.get("function"), Mapping) else item
        args: Any = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                args = {}
        calls.append(
            ToolCall(
                name=str(fn.get("name", "")),
                arguments=args if isinstance(args, dict) else {},
                id=str(item.get("id") or f"call_{i}"),
            )
        )
    return calls


def decode_arguments(raw: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """Decode tool-call arguments. Returns (arguments, raw_arguments, error)."""
    if isinstance(raw, dict):
        return raw, None, None
    if raw is None:
        return {}, None, None
    if not isinstance(raw, str):
        text = json.dumps(raw)
        return {}, text, f"arguments must be a JSON object, got {type(raw).__name__}"
    if not raw.strip():
        return {}, None, None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return {}, raw, f"arguments are not valid JSON: {exc}"
    if not isinstance(value, dict):
        return {}, raw, f"arguments must be a JSON object, got {type(value).__name__}"
    return value, None, None


def word_count(text: str) -> int:
    return len(text.split())
