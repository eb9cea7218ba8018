"""Failed sign-ins are counted per account name and per client address; past the limit, further
attempts are refused for the rest of the window, even with the right password, so a password cannot
be guessed by trying many. Counts live in the cache (Redis in production, process memory embedded).

The limit is hooked to Django's authentication itself, so every place that presents a password
through `authenticate()` (login page, admin login, token API, password change form) counts and is
refused alike, with no call of its own:
- `SignInLimitedModelBackend` refuses while the account or the address is locked (and marks the
  request), and clears the account's count after a right password;
- `count_failed_sign_in` listens to `user_login_failed`, which Django sends for every failure;
- `SignInLimitMiddleware` answers a marked request with 429 and `Retry-After`, whatever the view said.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_ACCOUNT = 10
MAX_FAILURES_PER_ADDRESS = 50
_LOCK_ATTRIBUTE = "orket_sign_in_locked"


@dataclass(frozen=True)
class LoginLimit:
    locked: bool
    retry_after_seconds: int = 0

    @property
    def message(self) -> str:
        minutes = max(1, round(self.retry_after_seconds / 60))
        return f"Too many failed sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."


def _account_key(username: str) -> str:
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return f"login-fail:user:{account}"


def _keys(request: HttpRequest | None, username: str) -> list[tuple[str, int]]:
    keys = [(_account_key(username), MAX_FAILURES_PER_ACCOUNT)]
    if request is not None:  # authenticate() called without a request still counts for the account
        address = request.META.get("REMOTE_ADDR", "") or "unknown"
        keys.append((f"login-fail:addr:{address}", MAX_FAILURES_PER_ADDRESS))
    return keys


def login_limit(request: HttpRequest | None, username: str) -> LoginLimit:
    for key, limit in _keys(request, username):
        if (cache.get(key) or 0) >= limit:
            return LoginLimit(locked=True, retry_after_seconds=WINDOW_SECONDS)
    return LoginLimit(locked=False)


def login_failed(request: HttpRequest | None, username: str) -> None:
    for key, _ in _keys(request, username):
        if cache.add(key, 1, timeout=WINDOW_SECONDS):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=WINDOW_SECONDS)


def login_succeeded(username: str) -> None:
    cache.delete(_account_key(username))


def _username_of(credentials: dict[str, Any]) -> str:
    field = get_user_model().USERNAME_FIELD
    return str(credentials.get(field) or credentials.get("username") or "")[:150]


class SignInLimitedModelBackend(ModelBackend):
    """Django's model backend, refusing (PermissionDenied stops every later backend) while locked."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if password is None:  # not a password sign-in (another backend's credentials)
            return None
        name = _username_of({"username": username, **kwargs})
        limit = login_limit(request, name)
        if limit.locked:
            if request is not None:
                setattr(request, _LOCK_ATTRIBUTE, limit)
            raise PermissionDenied(limit.message)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            login_succeeded(name)
        return user


def count_failed_sign_in(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any
) -> None:
    """Receiver of `user_login_failed`. Refusals of a locked request are not counted again."""
    if request is not None and getattr(request, _LOCK_ATTRIBUTE, None) is not None:
        return
    login_failed(request, _username_of(credentials))


class SignInLimitMiddleware:
    """Turns whatever a view answered to a locked sign-in into 429 with Retry-After (JSON for the API)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        limit: LoginLimit | None = getattr(request, _LOCK_ATTRIBUTE, None)
        if limit is None:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            locked: HttpResponse = JsonResponse({"detail": limit.message, "code": "too_many_attempts"}, status=429)
        else:
            locked = TemplateResponse(
                request, "registration/sign_in_locked.html", {"message": limit.message}, status=429
            ).render()
        locked["Retry-After"] = str(limit.retry_after_seconds)
        return locked
