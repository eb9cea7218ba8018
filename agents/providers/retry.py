"""Retrying a provider stream with exponential backoff and jitter.

Only errors marked `retryable` (timeouts, refused or dropped connections, 429 and 5xx) are retried; a refusal
(unknown model, bad key) or a malformed answer fails at once. When an attempt fails after it already produced
events, a Retrying event tells the consumer to discard what it has of this answer before the next attempt's
events arrive.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from agents.providers.base import ChatRequest, Provider, ProviderError, StreamEvent


@dataclass(frozen=True)
class Retrying:
    """The attempt `attempt` failed with `error`; the next one starts after `delay` seconds."""

    attempt: int
    error: ProviderError
    delay: float
    discard_output: bool  # the failed attempt had already produced events


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays cannot be negative")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The pause after failed attempt number `attempt` (1-based): half fixed, half random ("equal jitter")."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def stream_with_retry(
    provider: Provider,
    request: ChatRequest,
    policy: RetryPolicy,
    *,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[StreamEvent | Retrying]:
    """Stream `request`, retrying retryable failures; the last failure is raised as it was."""
    rng = rng or random.Random()
    for attempt in range(1, policy.attempts + 1):
        produced = False
        try:
            for event in provider.stream(request):
                produced = True
                yield event
            return
        except ProviderError as error:
            if not error.retryable or attempt == policy.attempts:
                raise
            delay = policy.delay(attempt, rng)
            yield Retrying(attempt=attempt, error=error, delay=delay, discard_output=produced)
            sleep(delay)
