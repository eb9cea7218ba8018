"""A lean route through Django for endpoints that need none of the session machinery.

Gitea's webhook deliveries must be answered in milliseconds. Through the full stack each one pays
for sessions, authentication, CSRF, messages, the sign-in limits and static files, none of which a
signed, login-free endpoint uses, and for a new thread made for the request alone. This route runs
the same URLconf and view, behind the middleware that shapes every answer (metrics, request id,
body size cap, security headers, content security policy, database outages, frame options), on a
few long-lived threads of its own. Anything else (other methods, other paths, WebSockets) goes to
the full application.
"""

from __future__ import annotations

import asyncio
import io
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpResponseBase
from django.utils.module_loading import import_string

from orket_site.concurrency import ASGIApp, Receive, Scope, Send

# What a signed, login-free endpoint never uses; every other middleware of settings.MIDDLEWARE runs.
SESSION_MIDDLEWARE = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "orket_site.login_limits.SignInLimitMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "orket_site.middleware.LoginRequiredByDefaultMiddleware",
    }
)


class LeanHandler(BaseHandler):
    """Django's synchronous handler with settings.MIDDLEWARE less the session machinery."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed([path for path in settings.MIDDLEWARE if path not in SESSION_MIDDLEWARE]):
            middleware = import_string(path)(handler)
            if hasattr(middleware, "process_view"):
                self._view_middleware.insert(0, middleware.process_view)
            if hasattr(middleware, "process_template_response"):
                self._template_response_middleware.append(middleware.process_template_response)
            if hasattr(middleware, "process_exception"):
                self._exception_middleware.append(middleware.process_exception)
            handler = convert_exception_to_response(middleware)
        self._middleware_chain = handler


class LeanRoute:
    """ASGI: HTTP requests whose method is in `methods` and whose path matches `path` go through a
    LeanHandler on `threads` threads of their own; everything else goes to `app`."""

    def __init__(self, app: ASGIApp, *, path: str, methods: frozenset[str], threads: int) -> None:
        self.app, self.path, self.methods = app, re.compile(path), methods
        self._handler: LeanHandler | None = None
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="orket-lean-http")

    def _takes(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope.get("method") in self.methods
            and self.path.fullmatch(scope.get("path") or "") is not None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._takes(scope):
            await self.app(scope, receive, send)
            return
        body = await _body(scope, receive)
        if body is None:  # the client went away before sending all of it
            return
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(self._threads, self._answer, scope, body)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _answer(self, scope: Scope, body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if self._handler is None:
            handler = LeanHandler()
            handler.load_middleware()
            self._handler = handler
        # The same signals as Django's own handler: connections are checked before and closed after.
        signals.request_started.send(sender=LeanHandler, scope=scope)
        response: HttpResponseBase | None = None
        try:
            response = self._handler.get_response(ASGIRequest(scope, io.BytesIO(body)))
            content = b"".join(response)
            headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
            headers += [
                (b"Set-Cookie", cookie.output(header="").strip().encode("latin-1"))
                for cookie in response.cookies.values()
            ]
            return response.status_code, headers, content
        finally:
            if response is not None:
                response.close()  # sends request_finished
            else:
                signals.request_finished.send(sender=LeanHandler)


async def _body(scope: Scope, receive: Receive) -> bytes | None:
    """The request body; none of it is kept when Content-Length already exceeds the site's cap (the
    request id middleware refuses it before anything reads it), and nothing beyond one byte past
    the cap otherwise."""
    declared = dict(scope.get("headers") or []).get(b"content-length", b"")
    keep = (
        0 if declared.isdigit() and int(declared) > settings.ORKET_MAX_BODY_BYTES else settings.ORKET_MAX_BODY_BYTES + 1
    )
    chunks: list[bytes] = []
    kept = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")[: max(0, keep - kept)]
        chunks.append(chunk)
        kept += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
