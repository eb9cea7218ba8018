"""One error shape for the whole API: {"detail": "...", "code": "..."} (plus "errors" for field problems)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from orket_site.errors import OrketError, has_out_of_range_id, is_number_out_of_range, is_unstorable_text


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "too_large"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The change is not allowed in the current state."
    default_code = "conflict"


def _first_message(errors: Any) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            message = _first_message(value)
            return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


def _code_of(error: exceptions.APIException) -> str:
    codes = error.get_codes()
    if isinstance(codes, str):
        return codes
    return error.default_code


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, OrketError):
        return Response(exc.as_dict(), status=exc.status)
    if is_number_out_of_range(exc):
        if has_out_of_range_id(context.get("kwargs") or {}):
            return Response({"detail": "Not found.", "code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
        return Response(
            {"detail": "A number in the request is too large.", "code": "out_of_range"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if is_unstorable_text(exc):
        return Response(
            {"detail": "A value in the request holds a NUL character.", "code": "invalid_unicode"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        body: dict[str, Any] = {"detail": _first_message(exc.detail), "code": "invalid", "errors": exc.detail}
        if isinstance(exc.detail, list):
            body["errors"] = {"non_field_errors": exc.detail}
    else:
        detail = exc.detail
        body = {"detail": str(detail) if not isinstance(detail, dict | list) else _first_message(detail)}
        body["code"] = _code_of(exc)
        extra = getattr(exc, "extra", None)
        if extra:
            body.update(extra)
    response.data = body
    return response
