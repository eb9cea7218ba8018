"""Secrets stored in the database (a Gitea API token, a webhook secret), encrypted with Fernet under a
key derived from Django's SECRET_KEY. Changing SECRET_KEY makes stored secrets unreadable: set them
again (or name an environment variable for the token instead)."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

_CONTEXT = b"orket:gitea:secrets:v1:"


class SecretUnreadable(Exception):
    """The stored secret cannot be decrypted (SECRET_KEY changed since it was saved)."""


def _fernet() -> Fernet:
    digest = hashlib.sha256(_CONTEXT + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt(stored: str) -> str:
    if not stored:
        return ""
    try:
        return _fernet().decrypt(stored.encode()).decode()
    except InvalidToken as error:
        raise SecretUnreadable(
            "A stored Gitea secret cannot be decrypted; SECRET_KEY changed since it was saved. Set it again."
        ) from error


@lru_cache(maxsize=512)
def decrypt_cached(stored: str) -> str:
    """decrypt() remembered per stored value (webhook secrets are read on every delivery)."""
    return decrypt(stored)
