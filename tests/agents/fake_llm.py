"""Fake LLM servers: real HTTP servers on 127.0.0.1 speaking Ollama's NDJSON and OpenAI's SSE byte for byte.

A FakeLLMServer runs http.server.ThreadingHTTPServer on port 0 in a background thread. Queue the replies it
should give with `server.queue(reply)`; each request takes the next one (a request with nothing queued gets a
500). Every request received is recorded in `server.requests` with its path, headers and body.

Replies are built by `ollama_stream`, `openai_stream`, `json_error` or `Reply(...)` directly: a status, headers,
and a list of body chunks, sent with chunked transfer encoding (or a Content-Length when `chunked=False`), with
optional pauses before chunks and an optional connection drop after a given chunk.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    chunks: Sequence[bytes] = ()
    content_type: str = "application/json"
    chunked: bool = True
    # Seconds to wait before sending chunk i (index -> seconds). Waits end early when the server stops.
    pauses: dict[int, float] = field(default_factory=dict)
    # Close the connection right after sending this many chunks, without finishing the body.
    drop_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake = self.server.fake
        recorded = RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        fake.record(recorded)
        reply = fake.next_reply(recorded)
        try:
            self._send(reply, fake.stopping)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _send(self, reply: Reply, stopping: threading.Event) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        if reply.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(sum(len(c) for c in reply.chunks)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()
        for i, chunk in enumerate(reply.chunks):
            pause = reply.pauses.get(i)
            if pause and stopping.wait(pause):
                self.close_connection = True
                return
            if reply.chunked:
                if not chunk:
                    continue  # an empty chunk would end the body
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            else:
                self.wfile.write(chunk)
            self.wfile.flush()
            if reply.drop_after is not None and i + 1 >= reply.drop_after:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        if reply.chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeLLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing a kept-alive connection is normal; anything else is kept for the test to see.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            return
        self.fake.record_error(exc)


class FakeLLMServer:
    def __init__(self, port: int = 0, responder: Callable[[RecordedRequest], Reply] | None = None) -> None:
        """`port` 0 takes a free one; `responder` answers requests when nothing is queued."""
        self.responder = responder
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException | None] = []
        self.stopping = threading.Event()
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def next_reply(self, request: RecordedRequest | None = None) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
        if self.responder is not None and request is not None:
            return self.responder(request)
        return json_error(500, "fake server: no reply queued")

    def record_error(self, exc: BaseException | None) -> None:
        with self._lock:
            self.errors.append(exc)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def json_error(status: int, message: str, *, openai_shape: bool = False) -> Reply:
    payload: dict[str, Any] = (
        {"error": {"message": message, "type": "invalid_request_error", "code": status}}
        if openai_shape
        else {"error": message}
    )
    return Reply(status=status, chunks=[json.dumps(payload).encode()], chunked=False)


# ---------------------------------------------------------------------------------------------------------------
# Ollama: one JSON object per line, the last with "done": true and the counts.

OLLAMA_CREATED_AT = "2026-01-01T00:00:00.000000Z"


def ollama_line(model: str, content: str = "", **extra: Any) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    message.update(extra.pop("message_extra", {}))
    obj: dict[str, Any] = {"model": model, "created_at": OLLAMA_CREATED_AT, "message": message, "done": False}
    obj.update(extra)
    return json.dumps(obj).encode() + b"\n"


def ollama_stream(
    texts: Iterable[str],
    *,
    model: str = "qwen2.5-coder:7b",
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_eval_count: int | None = 26,
    eval_count: int | None = 12,
    done_reason: str = "stop",
    thinking: Iterable[str] = (),
) -> Reply:
    """An Ollama /api/chat streaming answer: one line per text piece, tool calls in their own line, then done."""
    chunks = [ollama_line(model, "", message_extra={"thinking": t}) for t in thinking]
    chunks += [ollama_line(model, t) for t in texts]
    if tool_calls:
        chunks.append(ollama_line(model, "", message_extra={"tool_calls": tool_calls}))
    final: dict[str, Any] = {
        "model": model,
        "created_at": OLLAMA_CREATED_AT,
        "message": {"role": "assistant", "content": ""},
        "done_reason": done_reason,
        "done": True,
        "total_duration": 4883583458,
        "load_duration": 1334875,
        "prompt_eval_duration": 342546000,
        "eval_duration": 4535599000,
    }
    if prompt_eval_count is not None:
        final["prompt_eval_count"] = prompt_eval_count
    if eval_count is not None:
        final["eval_count"] = eval_count
    chunks.append(json.dumps(final).encode() + b"\n")
    return Reply(chunks=chunks, content_type="application/x-ndjson")


# ---------------------------------------------------------------------------------------------------------------
# OpenAI-compatible: server-sent events, "data: {json}\n\n", ending with "data: [DONE]\n\n".


def sse(payload: dict[str, Any] | str, *, space: bool = True) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return (b"data: " if space else b"data:") + data.encode() + b"\n\n"


def openai_chunk(
    delta: dict[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    model: str = "gpt-4o-mini",
    usage: dict[str, int] | None = None,
    no_choices: bool = False,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-fake1",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": []
        if no_choices
        else [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def openai_stream(
    texts: Iterable[str] = (),
    *,
    tool_call_deltas: list[list[dict[str, Any]]] | None = None,
    finish_reason: str = "stop",
    usage: dict[str, int] | None = None,
    model: str = "gpt-4o-mini",
    space: bool = True,
    done: bool = True,
    comments: bool = False,
) -> Reply:
    """An OpenAI chat-completions stream: role chunk, content chunks, tool-call delta chunks, finish, usage, DONE.

    `tool_call_deltas` is a list of chunks, each a list of `delta.tool_calls` entries (with their `index`).
    With `usage`, the finish chunk is followed by a chunk with empty choices carrying the usage, as OpenAI does
    with stream_options.include_usage.
    """
    chunks: list[bytes] = []
    if comments:
        chunks.append(b": keep-alive\n\n")
    chunks.append(sse(openai_chunk({"role": "assistant", "content": ""}, model=model), space=space))
    for text in texts:
        chunks.append(sse(openai_chunk({"content": text}, model=model), space=space))
        if comments:
            chunks.append(b"event: message\n")
    for deltas in tool_call_deltas or []:
        chunks.append(sse(openai_chunk({"tool_calls": deltas}, model=model), space=space))
    chunks.append(sse(openai_chunk({}, finish_reason=finish_reason, model=model), space=space))
    if usage is not None:
        chunks.append(sse(openai_chunk(model=model, usage=usage, no_choices=True), space=space))
    if done:
        chunks.append(sse("[DONE]", space=space))
    return Reply(chunks=chunks, content_type="text/event-stream")


# ---------------------------------------------------------------------------------------------------------------
# Constrained output: servers that take the JSON schema in only one shape and refuse the others with the error
# answers real servers give.


def sent_schema(body: dict[str, Any]) -> tuple[str | None, Any]:
    """(shape, schema) of an OpenAI-compatible request body: how it carries its response schema, if at all."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return None, None
    kind = response_format.get("type")
    if kind == "json_schema":
        wrapper = response_format.get("json_schema")
        return kind, wrapper.get("schema") if isinstance(wrapper, dict) else None
    if kind == "json_object":
        return kind, response_format.get("schema")
    return kind, None


def llama_server_refusal(shape: str, *, status: int = 400) -> Reply:
    """llama.cpp's llama-server before json_schema support (400; some builds answered 500 for the same throw)."""
    message = f'response_format type must be one of "text" or "json_object", but got: {shape}'
    kind = "invalid_request_error" if status == 400 else "server_error"
    payload = {"error": {"code": status, "message": message, "type": kind}}
    return Reply(status=status, chunks=[json.dumps(payload).encode()], chunked=False)


def vllm_refusal(shape: str) -> Reply:
    """vLLM's answer to a request its pydantic model rejects."""
    message = (
        "1 validation error for ChatCompletionRequest\nresponse_format.type\n  Input should be 'text' or "
        f"'json_object' [type=literal_error, input_value='{shape}', input_type=str]"
    )
    payload = {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}
    return Reply(status=400, chunks=[json.dumps(payload).encode()], chunked=False)


def llama_cpp_python_refusal(shape: str) -> Reply:
    """llama-cpp-python's server (FastAPI): request validation fails with 422 and a `detail` list."""
    detail = [
        {
            "type": "literal_error",
            "loc": ["body", "response_format", "type"],
            "msg": "Input should be 'text' or 'json_object'",
            "input": shape,
            "ctx": {"expected": "'text' or 'json_object'"},
        }
    ]
    return Reply(status=422, chunks=[json.dumps({"detail": detail}).encode()], chunked=False)


def lm_studio_refusal(shape: str) -> Reply:
    """LM Studio takes json_schema only."""
    payload = {"error": f"'response_format.type' must be 'json_schema', got '{shape}'"}
    return Reply(status=400, chunks=[json.dumps(payload).encode()], chunked=False)


class SchemaShapeServer:
    """A responder for FakeLLMServer that takes the response schema in `accepts` only.

    A request in that shape, with a schema object in the right place, gets `answer` streamed as the content; any
    other shape gets `refuse(shape)`. The schemas received are kept in `schemas`.
    """

    def __init__(self, accepts: str | None, refuse: Callable[[str], Reply], answer: str = '{"ok": true}') -> None:
        self.accepts = accepts
        self.refuse = refuse
        self.answer = answer
        self.schemas: list[Any] = []

    def __call__(self, request: RecordedRequest) -> Reply:
        shape, schema = sent_schema(request.json())
        if shape is None or shape != self.accepts or not isinstance(schema, dict):
            return self.refuse(str(shape))
        self.schemas.append(schema)
        return openai_stream([self.answer], usage={"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29})


# ---------------------------------------------------------------------------------------------------------------
# Model lists: Ollama's GET /api/tags and the OpenAI-style GET /v1/models.


def ollama_tags(*models: str) -> Reply:
    rows = [
        {"name": name, "model": name, "modified_at": OLLAMA_CREATED_AT, "size": 397821319, "digest": "0" * 64}
        for name in models
    ]
    return Reply(chunks=[json.dumps({"models": rows}).encode()], chunked=False)


def openai_models(*models: str) -> Reply:
    rows = [{"id": name, "object": "model", "created": 1733270000, "owned_by": "fake"} for name in models]
    return Reply(chunks=[json.dumps({"object": "list", "data": rows}).encode()], chunked=False)


class ModelServer:
    """A responder for FakeLLMServer serving a model list (GET /api/tags for Ollama, GET /v1/models
    for an OpenAI-compatible server) and passing every other request to `chat`."""

    def __init__(self, provider: str, models: Sequence[str], chat: Callable[[RecordedRequest], Reply]) -> None:
        self.provider = provider
        self.models = list(models)
        self.chat = chat

    def __call__(self, request: RecordedRequest) -> Reply:
        path = request.path.split("?", 1)[0].rstrip("/")
        if request.method == "GET" and self.provider == "ollama" and path == "/api/tags":
            return ollama_tags(*self.models)
        if request.method == "GET" and self.provider == "openai" and path == "/v1/models":
            return openai_models(*self.models)
        if request.method == "GET":
            return json_error(404, f"fake {self.provider} server: no {path}")
        return self.chat(request)
