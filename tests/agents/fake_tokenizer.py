"""Fake tokenize endpoints, served by tests/agents/fake_llm.FakeLLMServer on 127.0.0.1.

    with FakeLLMServer(responder=llamacpp_tokenizer()) as server: ...

`llamacpp_tokenizer` answers POST /tokenize as llama.cpp's llama-server does ({"content": ...} -> {"tokens": [...]})
and `vllm_tokenizer` as vLLM does ({"model": ..., "prompt": ...} -> {"count", "max_model_len", "tokens"}); any
other path is a 404, as on a server without the endpoint. Both split text with `fake_tokens`: a word with its
leading space, or one other character, is one token.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from typing import Any

from tests.agents.fake_llm import RecordedRequest, Reply, json_error

_TOKEN = re.compile(r"\s?\w+|\s|[^\w\s]")


def fake_tokens(text: str) -> list[int]:
    return [zlib.crc32(piece.encode()) % 32_000 for piece in _TOKEN.findall(text)]


def _json_reply(payload: dict[str, Any]) -> Reply:
    return Reply(chunks=[json.dumps(payload).encode()], chunked=False)


def _body(request: RecordedRequest) -> dict[str, Any] | None:
    try:
        body = request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def llamacpp_tokenizer() -> Callable[[RecordedRequest], Reply]:
    def respond(request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path != "/tokenize":
            return json_error(404, "File Not Found")
        body = _body(request)
        if body is None or not isinstance(body.get("content"), str):
            return json_error(400, '"content" must be provided')
        return _json_reply({"tokens": fake_tokens(body["content"])})

    return respond


def vllm_tokenizer(model: str) -> Callable[[RecordedRequest], Reply]:
    def respond(request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path != "/tokenize":
            return json_error(404, "Not Found")
        body = _body(request)
        if body is None or not isinstance(body.get("prompt"), str):
            return json_error(400, "prompt: Field required")
        if body.get("model") != model:
            return json_error(404, f"The model `{body.get('model')}` does not exist.")
        tokens = fake_tokens(body["prompt"])
        return _json_reply({"count": len(tokens), "max_model_len": 2048, "tokens": tokens})

    return respond
