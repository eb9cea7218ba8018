"""Prometheus metrics at `/metrics`, exposed with prometheus_client (text format 0.0.4).

Three kinds of series:
- Computed from the database at each scrape by `DatabaseCollector`, with a fixed number of
  aggregate queries: turns, tokens, turn durations, refusals, runs, queue depth. Every process
  answers alike, and they are never summed across processes.
- `orket_websocket_subscribers`: the run, board and log stream consumers connected to the process that
  answers (`SubscriberCollector`, counted by orket_site.subscribers).
- Counters and histograms that web and worker processes increment as they work
  (orket_site.instruments). With PROMETHEUS_MULTIPROC_DIR set, each process keeps them in files in
  that directory and a scrape sums every process's files (`MultiProcessCollector` on a registry
  made for the scrape); otherwise they are the answering process's own, next to prometheus_client's
  process and Python series.

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
from collections.abc import Iterable, Iterator

from django.contrib.auth.decorators import login_not_required
from django.db.models import Count, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from orket_site import instruments
from orket_site.env import env_list, env_str
from orket_site.subscribers import websocket_subscribers

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_ALLOWED_IPS = ["127.0.0.1", "::1"]
TURN_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# ---------------------------------------------------------------------------------------------
# Collectors read at each scrape
# ---------------------------------------------------------------------------------------------


def _histogram(
    name: str, help_text: str, bounds: Iterable[float], cumulative: list[int], total: float, count: int
) -> HistogramMetricFamily:
    buckets = [(floatToGoString(bound), observed) for bound, observed in zip(bounds, cumulative, strict=True)]
    return HistogramMetricFamily(name, help_text, buckets=[*buckets, ("+Inf", count)], sum_value=total)


class DatabaseCollector(Collector):
    """Series computed from the database with four aggregate queries, however many rows there are."""

    def describe(self) -> Iterator[Metric]:
        """The families without samples, so registering the collector runs no query."""
        yield CounterMetricFamily("orket_turns_total", "")
        yield CounterMetricFamily("orket_tokens_total", "")
        yield HistogramMetricFamily("orket_turn_duration_seconds", "")
        yield HistogramMetricFamily("orket_time_to_first_token_seconds", "")
        yield CounterMetricFamily("orket_refusals_total", "")
        yield GaugeMetricFamily("orket_runs", "")
        yield CounterMetricFamily("orket_run_failures_total", "")
        yield GaugeMetricFamily("orket_queue_depth", "")

    def collect(self) -> Iterator[Metric]:
        from agents.models import Run, TurnStatus

        turns_by_status, turns = _turn_rows()
        runs_by_status = dict(Run.objects.order_by().values_list("status").annotate(n=Count("id")))
        yield from _turn_families(turns_by_status, turns)
        yield _refusal_family(_refusals_by_rule())
        yield from _run_families(runs_by_status)
        yield GaugeMetricFamily(
            "orket_queue_depth",
            "Turns queued and waiting for a worker.",
            value=turns_by_status.get(TurnStatus.QUEUED, 0),
        )


def _turn_families(turns_by_status: dict[str, int], turns: dict[str, int | float | None]) -> Iterator[Metric]:
    from agents.models import TurnStatus

    by_status = CounterMetricFamily("orket_turns_total", "Agent turns recorded, by status.", labels=["status"])
    for status in sorted(set(TurnStatus.values) | set(turns_by_status)):
        by_status.add_metric([status], turns_by_status.get(status, 0))
    yield by_status

    tokens = CounterMetricFamily(
        "orket_tokens_total", "Model tokens of all turns: in (prompt) and out (completion).", labels=["direction"]
    )
    tokens.add_metric(["in"], turns["tokens_in"] or 0)
    tokens.add_metric(["out"], turns["tokens_out"] or 0)
    yield tokens

    yield _histogram(
        "orket_turn_duration_seconds",
        "Wall time of finished turns, from claim to record.",
        TURN_DURATION_BUCKETS,
        [turns[f"duration_le_{i}"] for i in range(len(TURN_DURATION_BUCKETS))],
        (turns["duration_sum"] or 0) / 1000,
        turns["duration_count"],
    )
    yield _histogram(
        "orket_time_to_first_token_seconds",
        "Time from sending the prompt to the first streamed token, per turn.",
        FIRST_TOKEN_BUCKETS,
        [turns[f"first_token_le_{i}"] for i in range(len(FIRST_TOKEN_BUCKETS))],
        (turns["first_token_sum"] or 0) / 1000,
        turns["first_token_count"],
    )


def _refusal_family(refusals: dict[str | None, int]) -> Metric:
    family = CounterMetricFamily("orket_refusals_total", "Tool calls refused by governance, by rule.", labels=["rule"])
    for rule in sorted(refusals, key=lambda r: r or ""):
        family.add_metric([rule or "unknown"], refusals[rule])
    return family


def _run_families(runs_by_status: dict[str, int]) -> Iterator[Metric]:
    from agents.models import RunStatus

    runs = GaugeMetricFamily("orket_runs", "Runs by status.", labels=["status"])
    for status in sorted(set(RunStatus.values) | set(runs_by_status)):
        runs.add_metric([status], runs_by_status.get(status, 0))
    yield runs
    yield CounterMetricFamily(
        "orket_run_failures_total", "Runs that ended failed.", value=runs_by_status.get(RunStatus.FAILED, 0)
    )


def _turn_rows() -> tuple[dict[str, int], dict[str, int | float | None]]:
    """Turns by status, and one aggregate row of tokens, durations and bucket counts."""
    from agents.models import Turn

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
    return turns_by_status, Turn.objects.order_by().aggregate(**aggregates)


def _refusals_by_rule() -> dict[str | None, int]:
    from agents.models import RunEvent

    return dict(
        RunEvent.objects.filter(kind="tool.refused")
        .order_by()
        .annotate(rule=KeyTextTransform("rule", "data"))
        .values_list("rule")
        .annotate(n=Count("id"))
    )


class SubscriberCollector(Collector):
    """The run and board stream clients connected to the process that answers the scrape."""

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("orket_websocket_subscribers", "")

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "orket_websocket_subscribers",
            "Run and board stream clients connected to this process.",
            labels=["stream"],
        )
        for stream, count in websocket_subscribers().items():
            family.add_metric([stream], count)
        yield family


DATABASE_COLLECTOR = DatabaseCollector()
SUBSCRIBER_COLLECTOR = SubscriberCollector()
REGISTRY.register(DATABASE_COLLECTOR)
REGISTRY.register(SUBSCRIBER_COLLECTOR)


def scrape_registry() -> CollectorRegistry:
    """The default registry; in multiprocess mode, one made for this scrape that sums every process's
    files and adds the database and this process's subscribers once."""
    directory = instruments.multiprocess_dir()
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    registry.register(DATABASE_COLLECTOR)
    registry.register(SUBSCRIBER_COLLECTOR)
    return registry


def render_metrics() -> str:
    """The whole exposition: four aggregate queries, this process's subscribers, the counters."""
    return generate_latest(scrape_registry()).decode()


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
