"""Authentication classes that also tag log records with the user's id."""

from __future__ import annotations

import re
from typing import Any

from django.utils import timezone
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from orket_site.api_tokens import api_token_mark_used
from orket_site.context import user_id_var
from orket_site.models import ApiToken

# The keys of DRF's former single token per user: 40 hexadecimal characters, no "orket_" prefix.
RETIRED_KEY = re.compile(r"[0-9a-f]{40}")
RETIRED_MESSAGE = "This token was retired; request a new one at POST /api/auth/token/"


def _remember(result: tuple[Any, Any] | None) -> tuple[Any, Any] | None:
    if result is not None:
        user_id_var.set(result[0].pk)
    return result


class SessionAuthentication(authentication.SessionAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        return _remember(super().authenticate(request))


class TokenAuthentication(KnoxTokenAuthentication):
    """knox's hashed, expiring tokens (`Authorization: Token <key>`); notes when each was last used."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = _remember(super().authenticate(request))
        if result is not None:
            api_token_mark_used(token=result[1])
        return result

    def authenticate_credentials(self, token: bytes) -> tuple[Any, ApiToken]:
        try:
            key = token.decode()
        except UnicodeDecodeError as error:
            raise exceptions.AuthenticationFailed("Invalid token.") from error
        try:
            return super().authenticate_credentials(token)
        except exceptions.AuthenticationFailed:
            if RETIRED_KEY.fullmatch(key):
                raise exceptions.AuthenticationFailed(RETIRED_MESSAGE, code="token_retired") from None
            raise

    def _cleanup_token(self, auth_token: ApiToken) -> bool:
        """True (and the token deleted) when it has expired. knox would also load every other token
        of the user on each request to delete expired ones; making a token clears those instead."""
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False
