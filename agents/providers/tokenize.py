"""Counting tokens with the model server's own tokenizer, when it has one.

    count_tokens("openai", "http://127.0.0.1:8080/v1", text, model="qwen2.5-coder")  # an int, or None

OpenAI-compatible servers that tokenize: llama.cpp's `llama-server` (POST /tokenize {"content": ...} answers
{"tokens": [...]}) and vLLM (POST /tokenize {"model": ..., "prompt": ...} answers {"count": n, "tokens": [...]}).
One request carries both spellings; each server ignores the field it does not know. Anything else (OpenAI,
LM Studio, a 404, a timeout, an answer of another shape) gives None, and so does Ollama, without a request.
No Django imports.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from agents.providers.base import DEFAULT_MAX_RESPONSE_BYTES

# Provider kinds whose servers have no tokenize endpoint.
NO_TOKENIZER_KINDS = frozenset({"ollama", "scripted"})


def tokenize_url(base_url: str) -> str:
    """{base}/tokenize, without the /v1 an OpenAI-compatible base URL may end in."""
    base = base_url.rstrip("/").removesuffix("/v1")
    return base + "/tokenize"


def count_tokens(
    kind: str,
    base_url: str,
    text: str,
    *,
    model: str | None = None,
    timeout: float = 5.0,
    api_key: str | None = None,
    client_options: dict[str, Any] | None = None,
) -> int | None:
    """How many tokens the server's tokenizer makes of `text`, or None when it cannot tell.
    `client_options` go to httpx.Client (the outbound policy's transport, for one)."""
    if kind in NO_TOKENIZER_KINDS or not base_url:
        return None
    if kind != "openai":
        raise ValueError(f"unknown provider kind {kind!r}")
    body: dict[str, Any] = {"content": text, "prompt": text}
    if model:
        body["model"] = model
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        payload = _post_json(tokenize_url(base_url), body, headers, timeout, client_options or {})
    except (httpx.HTTPError, ValueError):
        return None
    return _count(payload)


def _post_json(url: str, body: dict[str, Any], headers: dict[str, str], timeout: float, options: dict[str, Any]) -> Any:
    with (
        httpx.Client(timeout=timeout, **options) as client,
        client.stream("POST", url, json=body, headers=headers) as response,
    ):
        if response.status_code != 200:
            return None
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > DEFAULT_MAX_RESPONSE_BYTES:
                return None
        return json.loads(bytes(data))


def _count(payload: Any) -> int | None:
    if not isinstance(payload, dict):
        return None
    count = payload.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    tokens = payload.get("tokens")
    if isinstance(tokens, list):
        return len(tokens)
    return None
