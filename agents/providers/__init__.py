"""LLM providers: one streaming interface over Ollama, OpenAI-compatible servers and a scripted player.

Usage:

    provider = provider_for("ollama")
    for event in provider.stream(ChatRequest(messages=[...], model="qwen2.5-coder:7b", base_url=...)):
        ...  # TextDelta, ReasoningDelta, ToolCallsDone, then exactly one Finished

Failures raise a ProviderError subclass; `error.retryable` says whether trying again may help.
No Django imports here or below.
"""

from __future__ import annotations

from typing import Any

from agents.providers.base import (
    SCHEMA_SHAPES,
    ChatRequest,
    Finished,
    Provider,
    ProviderBadResponse,
    ProviderError,
    ProviderRefused,
    ProviderTimeout,
    ProviderUnavailable,
    ReasoningDelta,
    SchemaRefusal,
    SchemaUnsupported,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallsDone,
)
from agents.providers.ollama import OllamaProvider
from agents.providers.openai import OpenAIProvider, next_schema_shape
from agents.providers.retry import Retrying, RetryPolicy, stream_with_retry
from agents.providers.scripted import ScriptedProvider, ScriptedReply

PROVIDER_KINDS: dict[str, type[OllamaProvider] | type[OpenAIProvider] | type[ScriptedProvider]] = {
    "ollama": OllamaProvider,
    "openai": OpenAIProvider,
    "scripted": ScriptedProvider,
}


def provider_for(kind: str, **options: Any) -> Provider:
    """The provider for `kind` ("ollama", "openai" or "scripted"); `options` go to its constructor."""
    try:
        cls = PROVIDER_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(PROVIDER_KINDS))
        raise ValueError(f"unknown provider kind {kind!r}; expected one of {known}") from None
    return cls(**options)


__all__ = [
    "PROVIDER_KINDS",
    "SCHEMA_SHAPES",
    "ChatRequest",
    "Finished",
    "OllamaProvider",
    "OpenAIProvider",
    "Provider",
    "ProviderBadResponse",
    "ProviderError",
    "ProviderRefused",
    "ProviderTimeout",
    "ProviderUnavailable",
    "ReasoningDelta",
    "RetryPolicy",
    "Retrying",
    "SchemaRefusal",
    "SchemaUnsupported",
    "ScriptedProvider",
    "ScriptedReply",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "ToolCallsDone",
    "next_schema_shape",
    "provider_for",
    "stream_with_retry",
]
