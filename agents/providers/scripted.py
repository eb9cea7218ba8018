"""A deterministic provider that plays back scripted replies, for demos and tests.

Replies come from a list (played in order, one per call) or from a function of the request, so a scenario can
answer according to the role in the prompt. Text is streamed in small deltas; token counts are whitespace word
counts, so the same script always produces the same events.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.providers.base import (
    ChatRequest,
    Finished,
    ProviderError,
    ProviderRefused,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallsDone,
    error_kwargs,
    word_count,
)

MODEL_LABEL = "scripted"
_PIECES = re.compile(r"\s*\S+\s*|\s+")


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted answer. `error`, when set, is raised instead of answering (to rehearse failures)."""

    text: str = ""
    tool_calls: Sequence[ToolCall] = field(default_factory=tuple)
    reasoning: str = ""
    error: ProviderError | None = None


Responder = Callable[[ChatRequest], ScriptedReply]


def prompt_tokens(request: ChatRequest) -> int:
    total = 0
    for message in request.messages:
        total += word_count(str(message.get("content") or ""))
        for call in message.get("tool_calls") or []:
            if isinstance(call, ToolCall):
                total += word_count(call.name) + word_count(json.dumps(call.arguments))
            else:
                total += word_count(json.dumps(call, default=str))
    return total


def split_words(text: str, words_per_delta: int) -> list[str]:
    """Split text into deltas of `words_per_delta` words each, keeping all whitespace, so they join back exactly."""
    pieces = _PIECES.findall(text)
    return ["".join(pieces[i : i + words_per_delta]) for i in range(0, len(pieces), words_per_delta)]


class ScriptedProvider:
    kind = "scripted"

    def __init__(
        self,
        replies: Sequence[ScriptedReply] | Responder | None = None,
        *,
        words_per_delta: int = 2,
        tokens_per_second: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if words_per_delta < 1:
            raise ValueError("words_per_delta must be at least 1")
        if tokens_per_second is not None and tokens_per_second <= 0:
            raise ValueError("tokens_per_second must be positive (or None for unlimited)")
        self._responder: Responder | None = replies if callable(replies) else None
        self._replies: list[ScriptedReply] = [] if callable(replies) or replies is None else list(replies)
        self._has_script = replies is not None
        self._cursor = 0
        self._lock = threading.Lock()
        self.words_per_delta = words_per_delta
        self.tokens_per_second = tokens_per_second
        self._sleep = sleep

    @property
    def calls_made(self) -> int:
        return self._cursor

    def _next_reply(self, request: ChatRequest) -> tuple[int, ScriptedReply]:
        with self._lock:
            index = self._cursor
            self._cursor += 1
        if self._responder is not None:
            return index, self._responder(request)
        if not self._has_script:
            raise ProviderRefused("the scripted provider was given no script", **error_kwargs(request))
        if index >= len(self._replies):
            raise ProviderRefused(
                f"the script has {len(self._replies)} replies and reply {index + 1} was asked for",
                **error_kwargs(request),
            )
        return index, self._replies[index]

    def stream(self, request: ChatRequest) -> Iterator[StreamEvent]:
        index, reply = self._next_reply(request)
        if reply.error is not None:
            raise reply.error
        text = reply.text
        finish_reason = "tool_calls" if reply.tool_calls else "stop"
        if request.max_tokens is not None and word_count(text) > request.max_tokens:
            pieces = [p for p in _PIECES.findall(text) if p.strip()]
            text = "".join(pieces[: request.max_tokens]).rstrip()
            finish_reason = "length"
        delay = 0.0 if self.tokens_per_second is None else self.words_per_delta / self.tokens_per_second
        for piece in split_words(reply.reasoning, self.words_per_delta):
            if delay:
                self._sleep(delay)
            yield ReasoningDelta(piece)
        for piece in split_words(text, self.words_per_delta):
            if delay:
                self._sleep(delay)
            yield TextDelta(piece)
        calls = list(reply.tool_calls) if finish_reason != "length" else []
        if calls:
            yield ToolCallsDone(calls)
        completion = word_count(reply.reasoning) + word_count(text)
        completion += sum(word_count(c.name) + word_count(json.dumps(c.arguments)) for c in calls)
        metadata: dict[str, Any] = {"provider": self.kind, "model": MODEL_LABEL, "reply_index": index}
        yield Finished(
            prompt_tokens=prompt_tokens(request),
            completion_tokens=completion,
            finish_reason=finish_reason,
            metadata=metadata,
        )
