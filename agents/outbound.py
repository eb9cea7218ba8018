"""Where the server may connect on a user's say-so (Gitea base URLs, model server base URLs). No Django.

The operator lists the allowed hosts in ORKET_OUTBOUND_HOSTS: host names (any port), host:port, IP
addresses, [IPv6]:port and networks in CIDR form. The default is loopback only. A URL is checked when
it is saved and again when a connection is made: then the host name is resolved, and every address
it resolves to must be allowed (unless the operator listed the name itself), and the connection goes
to one of those checked addresses, so a name that resolves differently the second time (DNS
rebinding) reaches nothing else.

    policy = OutboundPolicy.parse(["gitea.example.com", "10.0.0.0/8"])
    url_check(policy, "https://gitea.example.com/")   # or OutboundRefused, when a URL is saved
    httpx.Client(transport=GuardedTransport(policy), trust_env=False)   # checked on every connection
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

SETTING = "ORKET_OUTBOUND_HOSTS"
DEFAULT_OUTBOUND_HOSTS = ("127.0.0.0/8", "::1", "localhost")
DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_UNSAFE_URL = re.compile(r"[\s\\\x00-\x1f\x7f]")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]


class OutboundRefused(Exception):
    """The policy refuses a URL or a connection; agents.outbound_policy turns it into a 400."""

    code = "outbound_refused"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def refusal(host: str) -> OutboundRefused:
    """The one answer for a host that is not allowed: it says nothing about the host beyond that."""
    return OutboundRefused(
        f"The server may not connect to {host}: it is not among the hosts the operator allows ({SETTING})."
    )


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _host_name(text: str) -> str | None:
    name = text.lower().rstrip(".")
    return name if _HOST_NAME.match(name) else None


@dataclass(frozen=True)
class Rule:
    """One entry of the list: a network (a single address is a /32 or /128) or a host name, and
    optionally the one port it allows."""

    network: IPNetwork | None = None
    name: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, entry: str) -> Rule:
        text = entry.strip()
        if "/" in text:
            return cls(network=ipaddress.ip_network(text, strict=False))
        port: int | None = None
        host = text
        bracketed = re.match(r"^\[([^\]]+)\](?::(\d+))?$", text)
        if bracketed:
            host, port = bracketed.group(1), int(bracketed.group(2)) if bracketed.group(2) else None
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            if not port_text.isdigit():
                raise ValueError(f"{entry!r}: the port must be a number")
            port = int(port_text)
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"{entry!r}: the port must be between 1 and 65535")
        address = _address(host)
        if address is not None:
            return cls(network=ipaddress.ip_network(address), port=port)
        name = _host_name(host)
        if name is None:
            raise ValueError(f"{entry!r} is not a host name, host:port, address or network")
        return cls(name=name, port=port)

    def _port_ok(self, port: int) -> bool:
        return self.port is None or self.port == port

    def allows_name(self, name: str, port: int) -> bool:
        return self.name is not None and self.name == name and self._port_ok(port)

    def allows_address(self, address: IPAddress, port: int) -> bool:
        network = self.network
        return network is not None and network.version == address.version and address in network and self._port_ok(port)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # a lowercase host name, or an address without brackets
    port: int
    address: IPAddress | None


def url_target(url: str) -> Target:
    """The scheme, host and port of an http(s) URL; OutboundRefused for anything else. Strict, so that
    this parser, httpx's and git's agree on the host: no user name or password, no backslashes,
    spaces or control characters, a plain host name or an IP address."""
    if _UNSAFE_URL.search(url):
        raise OutboundRefused("The URL has spaces, backslashes or control characters.")
    try:
        parts = urlsplit(url)
    except ValueError as error:  # a bracketed host that is not an address
        raise OutboundRefused("The URL's host is not a valid host name or address.") from error
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise OutboundRefused("The URL must start with http:// or https://.")
    netloc = parts.netloc
    if "@" in netloc:
        raise OutboundRefused("The URL may not contain a user name or password.")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as error:
        raise OutboundRefused("The URL's port is not a number between 1 and 65535.") from error
    if netloc.endswith(":"):
        raise OutboundRefused("The URL's port is empty.")
    host = parts.hostname or ""
    address = _address(host) if host else None
    if netloc.startswith("["):
        if address is None:
            raise OutboundRefused("The URL's host is not a valid address.")
        return Target(scheme, str(address), port, address)
    if isinstance(address, ipaddress.IPv4Address):
        return Target(scheme, str(address), port, address)
    name = _host_name(host)
    if name is None:
        raise OutboundRefused("The URL's host is not a valid host name or address.")
    return Target(scheme, name, port, None)


def url_check(policy: OutboundPolicy, url: str, resolver: Resolver | None = None) -> Target:
    """The check made when a URL is saved: a listed host name passes without being resolved (its
    server may be down for now); anything else must resolve to allowed addresses only."""
    target = url_target(url)
    if target.address is None and policy.name_listed(target.host, target.port):
        return target
    policy.addresses(target.host, target.port, resolver or system_resolve)
    return target


def system_resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order, without duplicates."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class OutboundPolicy:
    rules: tuple[Rule, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> OutboundPolicy:
        """ValueError names the first entry that is not a host name, host:port, address or network."""
        return cls(tuple(Rule.parse(entry) for entry in entries if entry.strip()))

    def name_listed(self, name: str, port: int) -> bool:
        return any(rule.allows_name(name, port) for rule in self.rules)

    def address_allowed(self, address: IPAddress, port: int) -> bool:
        return any(rule.allows_address(address, port) for rule in self.rules)

    def addresses(self, host: str, port: int, resolver: Resolver = system_resolve) -> list[str]:
        """The addresses a connection to host:port may use; OutboundRefused when there are none.
        A name the operator listed is trusted as it resolves; any other name must resolve only to
        allowed addresses."""
        host = host.strip("[]")
        literal = _address(host)
        if literal is not None:
            if self.address_allowed(literal, port):
                return [str(literal)]
            raise refusal(host)
        name = _host_name(host)
        if name is None:
            raise refusal(host)
        listed = self.name_listed(name, port)
        if not listed and not any(rule.network is not None for rule in self.rules):
            raise refusal(host)  # no address could be allowed: do not even ask the resolver
        try:
            resolved = resolver(name, port)
        except OSError as error:
            if listed:
                raise OutboundRefused(f"The host name {name} could not be resolved.") from error
            raise refusal(host) from error
        addresses = [a for a in (_address(text) for text in resolved) if a is not None]
        if not addresses or not (listed or all(self.address_allowed(a, port) for a in addresses)):
            raise refusal(host)
        return [str(a) for a in addresses]


# ---------------------------------------------------------------------------------------------
# Enforcing the policy when connecting
# ---------------------------------------------------------------------------------------------


class ConnectRefused(httpcore.ConnectError):
    """Raised inside httpx when the policy refuses a connection; httpx turns it into ConnectError with
    this as its cause."""


class _GuardedBackend(httpcore.SyncBackend):
    def __init__(self, policy: OutboundPolicy, resolver: Resolver) -> None:
        self.policy, self.resolver = policy, resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.policy.addresses(host, port, self.resolver)
        except OutboundRefused as refused:
            raise ConnectRefused(refused.message) from refused
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:  # the checked addresses, never the name again
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None
        raise failure


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose every connection goes through the policy. No proxy: a client using it
    must be made with trust_env=False, or the environment's proxy settings would route around it."""

    def __init__(self, policy: OutboundPolicy, resolver: Resolver = system_resolve) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=httpx.Limits().max_connections,
            max_keepalive_connections=httpx.Limits().max_keepalive_connections,
            network_backend=_GuardedBackend(policy, resolver),
        )


class RefusingTransport(httpx.BaseTransport):
    """A transport that connects nowhere, for a caller that must not send what it would send (an API
    key read from a variable that is not marked for secrets, say)."""

    def __init__(self, message: str) -> None:
        self.message = message

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(self.message, request=request) from OutboundRefused(self.message)


def refused_cause(error: BaseException) -> OutboundRefused | None:
    """The policy's refusal behind an httpx error, if that is what it was."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OutboundRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def git_connection_config(policy: OutboundPolicy, url: str, resolver: Resolver = system_resolve) -> dict[str, str]:
    """git configuration that keeps a push or fetch of `url` on checked addresses: the host name is
    resolved and checked now and curl is told to use exactly those addresses; redirects are off."""
    target = url_target(url)
    addresses = policy.addresses(target.host, target.port, resolver)
    config = {"http.followRedirects": "false"}
    if target.address is None:
        pinned = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
        config["http.curloptResolve"] = f"{target.host}:{target.port}:{pinned}"
    return config
