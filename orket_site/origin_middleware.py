"""The Origin check in front of every WebSocket route (the rule itself is orket_site.origins).

Allowed: the origins in CSRF_TRUSTED_ORIGINS and, when ORKET_SOCKET_ORIGIN_FROM_HOST is on (every
mode but production), the origin of the page the socket's own Host header names, when that host is
in ALLOWED_HOSTS. The sockets authenticate with the session cookie only, which a browser sends with
any page's socket, so a missing Origin is refused like a foreign one: browsers always send it.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from orket_site.origins import Origin, origin_allowed, page_origin_of_socket

Scope = dict[str, Any]


def _single_header(scope: Scope, name: bytes) -> str | None:
    values = [value for key, value in scope.get("headers", []) if key.lower() == name]
    return values[0].decode("latin-1") if len(values) == 1 else None


def own_origin(scope: Scope) -> Origin | None:
    """The page origin the Host header names, when that host is one this site answers to."""
    host = _single_header(scope, b"host")
    if not host:
        return None
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    return page_origin_of_socket(scope.get("scheme", "ws"), host)


def socket_origin_allowed(scope: Scope) -> bool:
    own = own_origin(scope) if settings.ORKET_SOCKET_ORIGIN_FROM_HOST else None
    return origin_allowed(_single_header(scope, b"origin"), trusted=settings.CSRF_TRUSTED_ORIGINS, own=own)


class ExactOriginValidator:
    """ASGI middleware: a WebSocket whose Origin is not exactly one of the site's is refused at the
    handshake (HTTP 403 through daphne)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("ExactOriginValidator only guards WebSocket connections")
        if socket_origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
