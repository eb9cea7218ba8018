"""The root of every app's error hierarchy. The API turns these into {"detail", "code"} answers."""

from __future__ import annotations

from typing import Any


class OrketError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        return {"detail": self.message, "code": self.code, **self.extra}


def is_number_out_of_range(error: BaseException) -> bool:
    """A number too large for the database column (SQLite raises OverflowError, PostgreSQL DataError)."""
    from django.db import DataError

    if isinstance(error, OverflowError):
        return True
    return isinstance(error, DataError) and "out of range" in str(error).lower()


def is_unstorable_text(error: BaseException) -> bool:
    """A NUL character reached PostgreSQL (psycopg refuses it in text, the server in jsonb); request
    bodies are checked on input, this catches the query strings that filter with one."""
    from django.db import DataError

    message = str(error)
    return isinstance(error, DataError) and ("NUL (0x00)" in message or "\\u0000 cannot be converted" in message)


def has_out_of_range_id(view_kwargs: dict[str, Any]) -> bool:
    """True when an id in the URL is larger than any row id can be (64-bit signed)."""
    return any(
        isinstance(value, int | str) and str(value).isdigit() and int(value) >= 2**63 for value in view_kwargs.values()
    )
