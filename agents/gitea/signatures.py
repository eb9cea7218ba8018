"""Webhook signatures as Gitea makes them: hex HMAC-SHA256 of the raw body with the hook's secret.

No Django, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Gitea-Signature"
# Gitea sends the same signature as `X-Hub-Signature-256: sha256=<hex>` for GitHub-style receivers.
HUB_SIGNATURE_HEADER = "X-Hub-Signature-256"


def sign(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `body` with `secret`, as Gitea puts it in X-Gitea-Signature."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, signature: str) -> bool:
    """Whether `signature` (hex, optionally prefixed `sha256=`) is the body's HMAC; constant time."""
    if not secret or not signature:
        return False
    given = signature.strip()
    if given.lower().startswith("sha256="):
        given = given[len("sha256=") :]
    given = given.lower()
    expected = sign(secret, body)
    return hmac.compare_digest(expected.encode(), given.encode("ascii", "replace"))


def new_secret() -> str:
    """A webhook secret: 32 random bytes, URL-safe text."""
    return secrets.token_urlsafe(32)


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
