"""Failed sign-ins are counted per account name and per client address; past the limit, further
attempts are refused for the rest of the window, even with the right password, so a password cannot
be guessed by trying many. Counts live in the cache (Redis in production, process memory embedded)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_ACCOUNT = 10
MAX_FAILURES_PER_ADDRESS = 50


@dataclass(frozen=True)
class LoginLimit:
    locked: bool
    retry_after_seconds: int = 0

    @property
    def message(self) -> str:
        minutes = max(1, round(self.retry_after_seconds / 60))
        return f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."


def _keys(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    address = request.META.get("REMOTE_ADDR", "") or "unknown"
    return [
        (f"login-fail:user:{account}", MAX_FAILURES_PER_ACCOUNT),
        (f"login-fail:addr:{address}", MAX_FAILURES_PER_ADDRESS),
    ]


def login_limit(request: HttpRequest, username: str) -> LoginLimit:
    for key, limit in _keys(request, username):
        if (cache.get(key) or 0) >= limit:
            return LoginLimit(locked=True, retry_after_seconds=WINDOW_SECONDS)
    return LoginLimit(locked=False)


def login_failed(request: HttpRequest, username: str) -> None:
    for key, _ in _keys(request, username):
        if cache.add(key, 1, timeout=WINDOW_SECONDS):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=WINDOW_SECONDS)


def login_succeeded(request: HttpRequest, username: str) -> None:
    cache.delete(_keys(request, username)[0][0])
