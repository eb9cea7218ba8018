from __future__ import annotations

import random

import pytest

from agents.providers import (
    ChatRequest,
    Finished,
    OllamaProvider,
    ProviderRefused,
    ProviderTimeout,
    ProviderUnavailable,
    Retrying,
    RetryPolicy,
    ScriptedProvider,
    ScriptedReply,
    TextDelta,
    stream_with_retry,
)
from tests.agents.fake_llm import FakeLLMServer, json_error, ollama_stream

MODEL = "llama3.1:8b"


def ollama_request(base_url: str) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": "hi"}], model=MODEL, base_url=base_url, timeout=5.0)


def test_retries_5xx_and_dropped_stream_then_succeeds(fake_llm: FakeLLMServer) -> None:
    dropped = ollama_stream(["par", "tial", "never"])
    dropped.drop_after = 2
    fake_llm.queue(json_error(503, "loading model"), dropped, ollama_stream(["whole ", "answer"]))
    slept: list[float] = []

    events = list(
        stream_with_retry(
            OllamaProvider(),
            ollama_request(fake_llm.base_url),
            RetryPolicy(attempts=3, base_delay=0.5),
            rng=random.Random(1),
            sleep=slept.append,
        )
    )

    retries = [e for e in events if isinstance(e, Retrying)]
    assert [(r.attempt, type(r.error), r.discard_output) for r in retries] == [
        (1, ProviderUnavailable, False),
        (2, ProviderUnavailable, True),
    ]
    assert slept == [r.delay for r in retries]
    assert 0.25 <= slept[0] <= 0.5
    assert 0.5 <= slept[1] <= 1.0
    after_last_retry = events[events.index(retries[-1]) + 1 :]
    assert [e.text for e in after_last_retry if isinstance(e, TextDelta)] == ["whole ", "answer"]
    assert isinstance(events[-1], Finished)
    assert len(fake_llm.requests) == 3


def test_unknown_model_is_not_retried(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(json_error(404, f'model "{MODEL}" not found, try pulling it first'))
    slept: list[float] = []

    with pytest.raises(ProviderRefused):
        list(stream_with_retry(OllamaProvider(), ollama_request(fake_llm.base_url), RetryPolicy(), sleep=slept.append))

    assert slept == []
    assert len(fake_llm.requests) == 1


def test_last_failure_is_raised_after_all_attempts() -> None:
    provider = ScriptedProvider([ScriptedReply(error=ProviderTimeout(f"timeout {i}")) for i in range(3)])
    slept: list[float] = []
    seen: list[object] = []

    with pytest.raises(ProviderTimeout, match="timeout 2"):
        for event in stream_with_retry(
            provider,
            ChatRequest(messages=[], model="scripted"),
            RetryPolicy(attempts=3, base_delay=1.0, max_delay=1.5),
            rng=random.Random(7),
            sleep=slept.append,
        ):
            seen.append(event)

    assert len(seen) == 2
    assert 0.5 <= slept[0] <= 1.0
    assert 0.75 <= slept[1] <= 1.5  # capped by max_delay


def test_delays_grow_exponentially_within_jitter_bounds() -> None:
    policy = RetryPolicy(attempts=6, base_delay=1.0, max_delay=100.0)
    rng = random.Random(3)
    for attempt in range(1, 6):
        ceiling = 2 ** (attempt - 1)
        assert ceiling / 2 <= policy.delay(attempt, rng) <= ceiling


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
