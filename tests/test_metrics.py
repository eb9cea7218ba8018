"""/metrics: Prometheus text from the database and the process, for a token or allowed addresses only."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from agents.models import ModelProfile, Run, Team, Turn
from agents.run_events import event_append
from agents.services import seed_standard_configuration
from boards.models import Card, Epic, Project
from orket_site import metrics, subscribers

pytestmark = pytest.mark.django_db

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
TOKEN = "s3cret-metrics-token"
REPO = Path(__file__).resolve().parent.parent


def parse(text: str) -> tuple[dict[str, str], dict[tuple[str, frozenset], float]]:
    """Check the 0.0.4 text format line by line; return the family types and the samples."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        assert line, "no blank lines"
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert METRIC_NAME.match(name) and name not in helps
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helps and name not in types, f"TYPE of {name} after its HELP, once"
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}
            types[name] = kind
            continue
        assert not line.startswith("#"), line
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, label_text, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name} has no # TYPE before it"
        labels = frozenset(LABEL.findall(label_text or ""))
        assert all(LABEL_NAME.match(key) for key, _ in labels)
        key = (name, labels)
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = math.inf if value == "+Inf" else float(value)
    return types, samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def metrics_env(monkeypatch):
    monkeypatch.delenv("ORKET_METRICS_TOKEN", raising=False)
    monkeypatch.delenv("ORKET_METRICS_ALLOWED_IPS", raising=False)
    return monkeypatch


def make_rows(extra_turns: int = 0) -> Run:
    seed_standard_configuration()
    project = Project.objects.create(name="Apollo", slug="apollo")
    epic = Epic.objects.create(project=project, name="Landing")
    team, profile = Team.objects.get(name="standard"), ModelProfile.objects.get(name="scripted-demo")
    run = Run.objects.create(project=project, epic=epic, team=team, model_profile=profile, status="running")
    Run.objects.create(project=project, epic=epic, team=team, model_profile=profile, status="failed")
    Run.objects.create(project=project, epic=epic, team=team, model_profile=profile, status="failed")
    Run.objects.create(project=project, epic=epic, team=team, model_profile=profile, status="succeeded")
    rows = [
        # status, tokens in, tokens out, duration ms, first token ms
        ("succeeded", 100, 40, 800, 30),
        ("succeeded", 200, 60, 3_000, 400),
        ("failed", 50, 0, 45_000, None),
        ("running", 10, 5, None, 70),
        ("queued", 0, 0, None, None),
        ("queued", 0, 0, None, None),
    ] + [("succeeded", 1, 1, 100, 100)] * extra_turns
    for number, (status, tokens_in, tokens_out, duration, first) in enumerate(rows, start=1):
        card = Card.objects.create(project=project, epic=epic, title=f"Card {number}")
        Turn.objects.create(
            run=run,
            card=card,
            number=1,
            seat="senior_developer",
            role="coder",
            model="scripted",
            provider="scripted",
            status=status,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            duration_ms=duration,
            time_to_first_token_ms=first,
        )
    for rule in ("path_refused", "path_refused", "tool_not_allowed", 'odd "rule"\\'):
        event_append(run.pk, "tool.refused", name="write_file", rule=rule, message="no")
    event_append(run.pk, "tool.error", name="read_file", rule="not_found", message="missing")
    return run


def test_metrics_match_the_rows(metrics_env, settings):
    make_rows()
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    types, samples = parse(response.content.decode())

    assert types["orket_turns_total"] == "counter"
    assert value(samples, "orket_turns_total", status="succeeded") == 2
    assert value(samples, "orket_turns_total", status="failed") == 1
    assert value(samples, "orket_turns_total", status="queued") == 2
    assert value(samples, "orket_turns_total", status="canceled") == 0
    assert value(samples, "orket_tokens_total", direction="in") == 360
    assert value(samples, "orket_tokens_total", direction="out") == 105

    assert types["orket_turn_duration_seconds"] == "histogram"
    assert value(samples, "orket_turn_duration_seconds_count") == 3
    assert value(samples, "orket_turn_duration_seconds_sum") == pytest.approx(48.8)
    assert value(samples, "orket_turn_duration_seconds_bucket", le="1.0") == 1
    assert value(samples, "orket_turn_duration_seconds_bucket", le="5.0") == 2
    assert value(samples, "orket_turn_duration_seconds_bucket", le="30.0") == 2
    assert value(samples, "orket_turn_duration_seconds_bucket", le="60.0") == 3
    assert value(samples, "orket_turn_duration_seconds_bucket", le="+Inf") == 3
    assert value(samples, "orket_time_to_first_token_seconds_count") == 3
    assert value(samples, "orket_time_to_first_token_seconds_sum") == pytest.approx(0.5)
    assert value(samples, "orket_time_to_first_token_seconds_bucket", le="0.05") == 1
    assert value(samples, "orket_time_to_first_token_seconds_bucket", le="0.1") == 2
    assert value(samples, "orket_time_to_first_token_seconds_bucket", le="0.5") == 3
    buckets = [v for (name, _), v in samples.items() if name == "orket_turn_duration_seconds_bucket"]
    assert buckets == sorted(buckets), "buckets are cumulative"

    assert value(samples, "orket_refusals_total", rule="path_refused") == 2
    assert value(samples, "orket_refusals_total", rule="tool_not_allowed") == 1
    assert value(samples, "orket_refusals_total", rule='odd \\"rule\\"\\\\') == 1  # escaped in the text
    assert not [key for key in samples if key[0] == "orket_refusals_total" and ("rule", "not_found") in key[1]]

    assert value(samples, "orket_runs", status="failed") == 2
    assert value(samples, "orket_runs", status="running") == 1
    assert value(samples, "orket_runs", status="queued") == 0
    assert value(samples, "orket_run_failures_total") == 2
    assert value(samples, "orket_queue_depth") == 2
    assert types["orket_websocket_subscribers"] == "gauge"
    assert value(samples, "orket_websocket_subscribers", stream="run") == 0


def test_the_number_of_queries_does_not_grow_with_the_rows(metrics_env):
    make_rows(extra_turns=60)
    with CaptureQueriesContext(connection) as queries:
        text = metrics.render_metrics()
    assert len(queries) == 4  # turns by status, one turn aggregate, runs by status, refusals by rule
    _, samples = parse(text)
    assert value(samples, "orket_turns_total", status="succeeded") == 62


def test_websocket_subscribers_are_counted_per_stream(metrics_env):
    subscribers.websocket_opened("run", "chan-a")
    subscribers.websocket_opened("run", "chan-b")
    subscribers.websocket_opened("board", "chan-c")
    try:
        subscribers.websocket_closed("chan-b")
        subscribers.websocket_closed("chan-b")  # twice: still counted once
        subscribers.websocket_closed("never-opened")
        assert subscribers.websocket_subscribers() == {"board": 1, "logs": 0, "run": 1}
        _, samples = parse(metrics.render_metrics())
        assert value(samples, "orket_websocket_subscribers", stream="run") == 1
        assert value(samples, "orket_websocket_subscribers", stream="board") == 1
    finally:
        subscribers.websocket_closed("chan-a")
        subscribers.websocket_closed("chan-c")
    assert subscribers.websocket_subscribers() == {"board": 0, "logs": 0, "run": 0}


def test_addresses_by_default_loopback_only(metrics_env):
    assert Client().get("/metrics").status_code == 200  # REMOTE_ADDR 127.0.0.1
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="not an address").get("/metrics").status_code == 403
    # Forwarded headers are never trusted.
    assert Client(REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="127.0.0.1").get("/metrics").status_code == 403


def test_configured_addresses_and_networks(metrics_env):
    metrics_env.setenv("ORKET_METRICS_ALLOWED_IPS", "10.1.0.0/16, 192.168.5.7")
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::ffff:192.168.5.7").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="192.168.5.8").get("/metrics").status_code == 403
    assert Client().get("/metrics").status_code == 403  # loopback is no longer in the list


def test_bearer_token(metrics_env):
    metrics_env.setenv("ORKET_METRICS_TOKEN", TOKEN)
    metrics_env.setenv("ORKET_METRICS_ALLOWED_IPS", "")
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert Client(**remote).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert Client(**remote).get("/metrics", HTTP_AUTHORIZATION=f"bearer {TOKEN}").status_code == 200
    assert Client(**remote).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 403
    assert Client(**remote).get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 403
    assert Client(**remote).get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert Client(**remote).get("/metrics").status_code == 403
    assert Client().get("/metrics").status_code == 403  # the address list is empty: loopback too needs the token
    assert Client(**remote).post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_switched_off_when_neither_a_token_nor_an_address_is_configured(metrics_env):
    metrics_env.setenv("ORKET_METRICS_ALLOWED_IPS", "")
    assert Client().get("/metrics").status_code == 404
    metrics_env.setenv("ORKET_METRICS_TOKEN", "")
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_no_login_is_needed_and_a_session_is_not_enough(metrics_env, make_user):
    client = Client(REMOTE_ADDR="10.9.9.9")
    client.force_login(make_user("someone", is_superuser=True, is_staff=True))
    assert client.get("/metrics").status_code == 403
    assert Client().get("/metrics").status_code == 200  # anonymous from loopback, no redirect to login


@pytest.mark.django_db(transaction=True)
async def test_connected_stream_consumers_are_counted(django_user_model):
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.conf import settings

    from boards.models import Membership, ProjectRole
    from orket_site.asgi import application

    def setup() -> tuple[int, int, bytes]:
        run = make_rows()
        user = django_user_model.objects.create_user("watcher", password="pw long enough 1")
        Membership.objects.create(project=run.project, user=user, role=ProjectRole.VIEWER)
        client = Client()
        client.force_login(user)
        cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
        return run.pk, run.project_id, cookie

    run_id, project_id, cookie = await sync_to_async(setup)()
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000"), (b"cookie", cookie)]
    before = subscribers.websocket_subscribers()
    streams = [
        WebsocketCommunicator(application, f"/ws/runs/{run_id}/?after=0", headers=headers),
        WebsocketCommunicator(application, f"/ws/runs/{run_id}/?after=0", headers=headers),
        WebsocketCommunicator(application, f"/ws/projects/{project_id}/", headers=headers),
    ]
    for stream in streams:
        assert (await stream.connect(timeout=5))[0]
    refused = WebsocketCommunicator(application, f"/ws/runs/{run_id}/?after=0", headers=headers[:2])
    assert not (await refused.connect(timeout=5))[0]  # anonymous: refused, never counted
    assert subscribers.websocket_subscribers() == {
        "board": before["board"] + 1,
        "logs": before["logs"],
        "run": before["run"] + 2,
    }
    for stream in streams:
        await stream.disconnect()
    assert subscribers.websocket_subscribers() == before


def test_requests_and_celery_tasks_are_counted_in_this_process(metrics_env):
    from orket_site.tasks import worker_ping

    _, before = parse(metrics.render_metrics())
    Client().get("/healthz")
    worker_ping.apply()
    _, after = parse(metrics.render_metrics())

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - before.get((name, frozenset(labels.items())), 0)

    assert grew("orket_http_requests_total", method="GET", status="200") == 1
    assert grew("orket_http_request_duration_seconds_count") == 1
    assert grew("orket_celery_tasks_total", task="orket.worker_ping", state="SUCCESS") == 1
    assert grew("orket_celery_task_duration_seconds_count", task="orket.worker_ping") == 1


WEB_AND_WORKER = """
import django
django.setup()
from django.test import Client
from orket_site.tasks import worker_ping
assert Client(HTTP_HOST="127.0.0.1").get("/healthz").status_code == 200
worker_ping.apply()
"""


def run_in_processes(code: str, count: int, multiprocess_dir: str) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": multiprocess_dir, "PYTHONPATH": str(REPO)}
    env["DJANGO_SETTINGS_MODULE"] = "orket_site.settings_test"
    children = [
        subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=PIPE, stderr=PIPE, text=True)
        for _ in range(count)
    ]
    finished = []
    for child in children:
        stdout, stderr = child.communicate(timeout=60)
        finished.append(subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr))
    return finished


def test_multiprocess_mode_sums_the_counters_of_every_process(metrics_env, tmp_path):
    make_rows()
    for done in run_in_processes(WEB_AND_WORKER, 2, str(tmp_path)):
        assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.glob("counter_*.db"))) == 2, "one file per process"

    metrics_env.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    response = Client().get("/metrics")
    assert response.status_code == 200
    types, samples = parse(response.content.decode())  # also: no sample twice

    assert value(samples, "orket_http_requests_total", method="GET", status="200") == 2
    assert value(samples, "orket_http_request_duration_seconds_count") == 2
    assert value(samples, "orket_celery_tasks_total", task="orket.worker_ping", state="SUCCESS") == 2
    assert value(samples, "orket_celery_task_duration_seconds_count", task="orket.worker_ping") == 2
    assert types["orket_celery_tasks_total"] == "counter"
    # Read from the database once per scrape, not once per process.
    assert value(samples, "orket_queue_depth") == 2
    assert value(samples, "orket_turns_total", status="succeeded") == 2
    assert value(samples, "orket_websocket_subscribers", stream="run") == 0


def test_a_multiprocess_directory_that_does_not_exist_stops_the_process(tmp_path):
    missing = str(tmp_path / "missing")
    [done] = run_in_processes("import orket_site.instruments", 1, missing)
    assert done.returncode != 0
    assert f"PROMETHEUS_MULTIPROC_DIR={missing!r} is not an existing directory" in done.stderr
