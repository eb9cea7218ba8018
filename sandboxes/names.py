"""Sandbox names: what Docker, compose project names and host names all accept. Pure.

A name holds lowercase letters, digits and single dashes, starts and ends with a letter or a digit,
is at most 63 characters long (a DNS label), and is never empty.
"""

from __future__ import annotations

import re
import secrets

MAX_LENGTH = 63
FALLBACK = "sandbox"
_NOT_ALLOWED = re.compile(r"[^a-z0-9]+")


def sanitize_name(raw: str, *, fallback: str = FALLBACK, max_length: int = MAX_LENGTH) -> str:
    """Lowercase, every run of other characters becomes one dash, no dash at either end, capped."""
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    name = _NOT_ALLOWED.sub("-", raw.lower()).strip("-")[:max_length].rstrip("-")
    if name:
        return name
    if fallback == FALLBACK:
        return FALLBACK[:max_length]
    return sanitize_name(fallback, max_length=max_length)


def sandbox_name(*, project_slug: str, card_id: int | None = None, pull_request: int | None = None) -> str:
    """A fresh name such as `orket-apollo-c12-3f9a1c`; the random tail keeps it unique and is never cut."""
    tail = secrets.token_hex(3)
    subject = f"c{card_id}" if card_id is not None else f"pr{pull_request}" if pull_request is not None else "main"
    head = sanitize_name(f"orket-{project_slug}-{subject}", max_length=MAX_LENGTH - len(tail) - 1)
    return f"{head}-{tail}"


def is_valid_name(name: str) -> bool:
    return 0 < len(name) <= MAX_LENGTH and sanitize_name(name) == name
