"""The boards error hierarchy; the API maps each to an HTTP status with a machine-readable code."""

from __future__ import annotations

from orket_site.errors import OrketError


class BoardsError(OrketError):
    status = 400
    code = "invalid"


class NotFound(BoardsError):
    status = 404
    code = "not_found"


class Forbidden(BoardsError):
    status = 403
    code = "permission_denied"


class InvalidInput(BoardsError):
    status = 400
    code = "invalid"


class IllegalState(BoardsError):
    status = 409
    code = "conflict"
