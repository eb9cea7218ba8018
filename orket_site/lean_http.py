"""A lean route through Django for endpoints that need none of the session machinery.

Gitea's webhook deliveries must be answered in milliseconds. Through the full stack each one pays
for sessions, authentication, CSRF, messages, the sign-in limits and static files, none of which a
signed, login-free endpoint uses, and for a new thread made for the request alone. This route runs
the same URLconf and view, behind the middleware that shapes every answer (metrics, request id,
body size cap, security headers, content security policy, database outages, frame options), on a
few long-lived threads of its own that keep their database connections. Anything else (other
methods, other paths, WebSockets) goes to the full application.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
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
        self._lock = threading.Lock()
        self._open: weakref.WeakSet[BaseDatabaseWrapper] = weakref.WeakSet()

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
        for connection in connections.all(initialized_only=True):
            # A kept connection the server dropped meanwhile (a restart) would fail this request.
            if connection.connection is not None and not connection.is_usable():
                connection.close()
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
            self._keep_healthy_connections()

    def _keep_healthy_connections(self) -> None:
        """These threads live as long as the process, so, like the worker threads, they keep their
        database connections for the next request (opening one costs more than the delivery). One
        that failed and cannot be used any more is closed, as Django does between requests, and one
        found unusable before a request (checked as CONN_HEALTH_CHECKS does) is replaced."""
        for connection in connections.all(initialized_only=True):
            if connection.errors_occurred:
                if connection.is_usable():
                    connection.errors_occurred = False
                else:
                    connection.close()
            if connection.connection is not None:
                with self._lock:
                    self._open.add(connection)

    def release_connections(self) -> None:
        """Close the connections the route's threads keep (a test database about to be dropped)."""
        with self._lock:
            kept, self._open = list(self._open), weakref.WeakSet()
        for connection in kept:
            connection.inc_thread_sharing()
            try:
                connection.close()
            finally:
                connection.dec_thread_sharing()


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
