"""Prometheus metrics at `/metrics` (text exposition format 0.0.4, written by hand).

Everything but the WebSocket subscriber gauge is computed from the database with a fixed number of
aggregate queries, so every web process answers alike; the subscriber gauge counts the run and board
stream consumers connected to the process that answers.

Access (the route needs no login, but is not public):
- `Authorization: Bearer <ORKET_METRICS_TOKEN>` (compared in constant time), or
- a REMOTE_ADDR in ORKET_METRICS_ALLOWED_IPS (comma-separated addresses or networks; default
  `127.0.0.1,::1`; set it empty to allow no address). X-Forwarded-For is never trusted.
Anything else gets 403; when no token is set and the address list is empty, metrics are switched
off and the route answers 404.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import threading
from collections import Counter
from collections.abc import Iterable

from django.contrib.auth.decorators import login_not_required
from django.db.models import Count, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from orket_site.env import env_list, env_str

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_ALLOWED_IPS = ["127.0.0.1", "::1"]
STREAMS = ("run", "board")
TURN_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# ---------------------------------------------------------------------------------------------
# WebSocket subscribers of this process
# ---------------------------------------------------------------------------------------------

_lock = threading.Lock()
_open: dict[str, str] = {}


def websocket_opened(stream: str, channel_name: str) -> None:
    """A stream consumer (`run` or `board`) accepted a client on `channel_name`."""
    with _lock:
        _open[channel_name] = stream


def websocket_closed(channel_name: str) -> None:
    """The consumer on `channel_name` disconnected; a no-op when it never counted as opened."""
    with _lock:
        _open.pop(channel_name, None)


def websocket_subscribers() -> dict[str, int]:
    with _lock:
        counts = Counter(_open.values())
    return {stream: counts.get(stream, 0) for stream in sorted(set(STREAMS) | set(counts))}


# ---------------------------------------------------------------------------------------------
# Exposition
# ---------------------------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | int) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines.append(f"# HELP {name} {escaped}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float | int, labels: dict[str, str] | None = None) -> None:
        label_text = ""
        if labels:
            label_text = "{" + ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items()) + "}"
        self.lines.append(f"{name}{label_text} {_number(value)}")

    def histogram(
        self, name: str, help_text: str, bounds: Iterable[float], cumulative: list[int], total: float, count: int
    ) -> None:
        self.family(name, "histogram", help_text)
        for bound, observed in zip(bounds, cumulative, strict=True):
            self.sample(f"{name}_bucket", observed, {"le": _number(float(bound))})
        self.sample(f"{name}_bucket", count, {"le": "+Inf"})
        self.sample(f"{name}_sum", total)
        self.sample(f"{name}_count", count)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_metrics() -> str:
    """The whole exposition, from four aggregate queries and the process's subscriber counts."""
    from agents.models import Run, RunEvent, RunStatus, Turn, TurnStatus

    turns_by_status = dict(Turn.objects.order_by().values_list("status").annotate(n=Count("id")))
    aggregates: dict[str, Count | Sum] = {
        "tokens_in": Sum("tokens_in"),
        "tokens_out": Sum("tokens_out"),
        "duration_sum": Sum("duration_ms"),
        "duration_count": Count("duration_ms"),
        "first_token_sum": Sum("time_to_first_token_ms"),
        "first_token_count": Count("time_to_first_token_ms"),
    }
    for index, bound in enumerate(TURN_DURATION_BUCKETS):
        aggregates[f"duration_le_{index}"] = Count("id", filter=Q(duration_ms__lte=bound * 1000))
    for index, bound in enumerate(FIRST_TOKEN_BUCKETS):
        aggregates[f"first_token_le_{index}"] = Count("id", filter=Q(time_to_first_token_ms__lte=bound * 1000))
    turns = Turn.objects.order_by().aggregate(**aggregates)
    runs_by_status = dict(Run.objects.order_by().values_list("status").annotate(n=Count("id")))
    refusals = dict(
        RunEvent.objects.filter(kind="tool.refused")
        .order_by()
        .annotate(rule=KeyTextTransform("rule", "data"))
        .values_list("rule")
        .annotate(n=Count("id"))
    )

    out = Exposition()
    out.family("orket_turns_total", "counter", "Agent turns recorded, by status.")
    for status in sorted(set(TurnStatus.values) | set(turns_by_status)):
        out.sample("orket_turns_total", turns_by_status.get(status, 0), {"status": status})

    out.family("orket_tokens_total", "counter", "Model tokens of all turns: in (prompt) and out (completion).")
    out.sample("orket_tokens_total", turns["tokens_in"] or 0, {"direction": "in"})
    out.sample("orket_tokens_total", turns["tokens_out"] or 0, {"direction": "out"})

    out.histogram(
        "orket_turn_duration_seconds",
        "Wall time of finished turns, from claim to record.",
        TURN_DURATION_BUCKETS,
        [turns[f"duration_le_{i}"] for i in range(len(TURN_DURATION_BUCKETS))],
        (turns["duration_sum"] or 0) / 1000,
        turns["duration_count"],
    )
    out.histogram(
        "orket_time_to_first_token_seconds",
        "Time from sending the prompt to the first streamed token, per turn.",
        FIRST_TOKEN_BUCKETS,
        [turns[f"first_token_le_{i}"] for i in range(len(FIRST_TOKEN_BUCKETS))],
        (turns["first_token_sum"] or 0) / 1000,
        turns["first_token_count"],
    )

    out.family("orket_refusals_total", "counter", "Tool calls refused by governance, by rule.")
    for rule in sorted(refusals, key=lambda r: r or ""):
        out.sample("orket_refusals_total", refusals[rule], {"rule": rule or "unknown"})

    out.family("orket_runs", "gauge", "Runs by status.")
    for status in sorted(set(RunStatus.values) | set(runs_by_status)):
        out.sample("orket_runs", runs_by_status.get(status, 0), {"status": status})

    out.family("orket_run_failures_total", "counter", "Runs that ended failed.")
    out.sample("orket_run_failures_total", runs_by_status.get(RunStatus.FAILED, 0))

    out.family("orket_queue_depth", "gauge", "Turns queued and waiting for a worker.")
    out.sample("orket_queue_depth", turns_by_status.get(TurnStatus.QUEUED, 0))

    out.family("orket_websocket_subscribers", "gauge", "Run and board stream clients connected to this process.")
    for stream, count in websocket_subscribers().items():
        out.sample("orket_websocket_subscribers", count, {"stream": stream})
    return out.text()


# ---------------------------------------------------------------------------------------------
# Access and view
# ---------------------------------------------------------------------------------------------


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in env_list("ORKET_METRICS_ALLOWED_IPS", DEFAULT_ALLOWED_IPS):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue
    return networks


def _address_allowed(remote_addr: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(remote_addr.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == network.version and address in network for network in networks)


def _token_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def access(request: HttpRequest) -> int:
    """200 when the request may read metrics, 403 when it may not, 404 when metrics are off."""
    token = env_str("ORKET_METRICS_TOKEN")
    networks = _allowed_networks()
    if not token and not networks:
        return 404
    if _token_matches(request.META.get("HTTP_AUTHORIZATION", ""), token):
        return 200
    if _address_allowed(request.META.get("REMOTE_ADDR", ""), networks):
        return 200
    return 403


@login_not_required
@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    status = access(request)
    if status == 404:
        return HttpResponse("Not found.\n", status=404, content_type="text/plain; charset=utf-8")
    if status == 403:
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain; charset=utf-8")
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE)
