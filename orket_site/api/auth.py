"""Authentication classes that also tag log records with the user's id."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication
from rest_framework.request import Request

from orket_site.context import user_id_var


def _remember(result: tuple[Any, Any] | None) -> tuple[Any, Any] | None:
    if result is not None:
        user_id_var.set(result[0].pk)
    return result


class SessionAuthentication(authentication.SessionAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        return _remember(super().authenticate(request))


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        return _remember(super().authenticate(request))
