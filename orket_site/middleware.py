"""Site middleware: request ids, body size cap, login required by default, database outages."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.models import AnonymousUser
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from orket_site.context import request_id_var, user_id_var
from orket_site.errors import is_number_out_of_range, is_unstorable_text

logger = logging.getLogger("orket.request")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Tags each request with an id (taken from X-Request-ID when well formed) for logs and replies.

    Also refuses bodies larger than ORKET_MAX_BODY_BYTES before anything reads them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        request_token = request_id_var.set(request_id)
        user_token = user_id_var.set(None)
        try:
            response = self._too_large(request) or self.get_response(request)
        finally:
            request_id_var.reset(request_token)
            user_id_var.reset(user_token)
        response["X-Request-ID"] = request_id
        return response

    @staticmethod
    def _too_large(request: HttpRequest) -> HttpResponse | None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number.", "code": "bad_request"}, status=400)
        limit = settings.ORKET_MAX_BODY_BYTES
        if length > limit:
            return JsonResponse(
                {"detail": f"Request body is larger than {limit} bytes.", "code": "too_large"}, status=413
            )
        return None


_OUTAGE_WORDS = (
    "connection",
    "connect to server",
    "server closed",
    "terminating",
    "shutting down",
    "timeout",
    "timed out",
    "database is locked",
    "starting up",
    "too many clients",
)


def is_database_outage(error: BaseException) -> bool:
    """True for errors that mean "the database cannot be reached right now", not for broken queries."""
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    message = str(error).lower()
    return any(word in message for word in _OUTAGE_WORDS)


class DatabaseUnavailableMiddleware:
    """Answers 503 with the error shape, never a stack trace, while the database cannot be reached."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        # The session and the user are read lazily, first by the middleware after this one, outside
        # any view: an outage there would skip process_exception and become a bare 500. Read them
        # here, where it can be answered properly. Public pages (health, login) go on without the
        # session's user, so /healthz still answers and /readyz reports the outage itself.
        user = getattr(request, "user", None)
        try:
            if user is not None:
                user.is_authenticated  # noqa: B018  (loads the session and the user)
        except (OperationalError, InterfaceError) as error:
            if not is_database_outage(error):
                raise
            # DRF views mark themselves login_not_required and authenticate inside the view.
            public_page = not getattr(view_func, "login_required", True) and not hasattr(view_func, "cls")
            if not public_page:
                return self.unavailable(error)
            request.user = AnonymousUser()
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_outage(exception):
            return self.unavailable(exception)
        if is_number_out_of_range(exception):
            # Pages take ids from the URL only; an id no row can have names nothing.
            raise Http404("No such page.") from exception
        if is_unstorable_text(exception):
            return HttpResponseBadRequest("A value in the request holds a NUL character.")
        return None

    @staticmethod
    def unavailable(error: BaseException) -> HttpResponse:
        logger.error("database unavailable: %s", error)
        response = JsonResponse(
            {"detail": "The database is unavailable; try again shortly.", "code": "database_unavailable"},
            status=503,
        )
        response["Retry-After"] = "5"
        return response


class LoginRequiredByDefaultMiddleware(LoginRequiredMiddleware):
    """Every page needs a logged-in user unless its view is marked `login_not_required`.

    API views are left to Django REST framework, which authenticates sessions and tokens itself and
    answers 401/403 JSON instead of redirecting. Static files are served before this runs.
    """

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if request.user.is_authenticated:
            user_id_var.set(request.user.pk)
        if getattr(view_func, "cls", None) is not None and hasattr(view_func.cls, "authentication_classes"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
