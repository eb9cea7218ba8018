"""Per-request context (request id, user id) carried into log records."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("orket_request_id", default=None)
user_id_var: ContextVar[int | None] = ContextVar("orket_user_id", default=None)
