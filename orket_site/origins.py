"""Which page origins may open a WebSocket: only the exact origins the site is served from.

A pure rule with no Django. An origin is a scheme, a host and a port; all three must match, because
another port of the same host (a sandbox app on 127.0.0.1:<port>) is another site to a browser.
A missing Origin, `null` and anything that is not an http(s) origin are refused.

Trusted entries are written as in Django's CSRF_TRUSTED_ORIGINS: `https://orket.example.com`, or
`https://*.example.com` for the domain and its subdomains (scheme and port still exact).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
PAGE_SCHEME_OF_SOCKET = {"ws": "http", "wss": "https"}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int


def parse_origin(text: str) -> Origin | None:
    """`scheme://host[:port]` as an Origin with its port made explicit, or None for anything else."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return Origin(scheme, parts.hostname, port if port is not None else DEFAULT_PORTS[scheme])


def page_origin_of_socket(socket_scheme: str, host_header: str) -> Origin | None:
    """The origin of a page served by the host a socket connected to: ws becomes http, wss https."""
    page_scheme = PAGE_SCHEME_OF_SOCKET.get(socket_scheme.lower())
    if page_scheme is None or not host_header:
        return None
    return parse_origin(f"{page_scheme}://{host_header}")


def matches_trusted(origin: Origin, entry: str) -> bool:
    trusted = parse_origin(entry)
    if trusted is None or (trusted.scheme, trusted.port) != (origin.scheme, origin.port):
        return False
    if trusted.host.startswith("*."):
        domain = trusted.host[2:]
        return origin.host == domain or origin.host.endswith("." + domain)
    return trusted.host == origin.host


def origin_allowed(origin_header: str | None, *, trusted: Iterable[str], own: Origin | None = None) -> bool:
    """True when the Origin header names exactly `own` (the site as the request reached it) or a
    trusted entry."""
    origin = parse_origin(origin_header) if origin_header else None
    if origin is None:
        return False
    if own is not None and origin == own:
        return True
    return any(matches_trusted(origin, entry) for entry in trusted)
