"""Real processes: the production topology (daphne + Celery worker on PostgreSQL and Redis), the
embedded server as `make run` starts it, and the production settings check."""

from __future__ import annotations

import json
import secrets
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels_redis.core import RedisChannelLayer
from websockets.sync.client import connect as ws_connect

from tests.processes import BIN, PYTHON, app_env, login_over_http, run_manage, started, wait_for_http
from tests.services import free_port, redis_url

pytestmark = pytest.mark.slow

ADMIN_PASSWORD = "topology test password 7"


def test_production_topology_runs_tasks_on_a_separate_worker(postgres_database: str, tmp_path: Path) -> None:
    redis = redis_url().rsplit("/", 1)[0] + "/9"
    env = app_env(
        DATABASE_URL=postgres_database,
        REDIS_URL=redis,
        ORKET_DATA_DIR=str(tmp_path),
        ORKET_ADMIN_USER="operator",
        ORKET_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    migrated = run_manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    seeded = run_manage(env, "orket_seed")
    assert seeded.returncode == 0, seeded.stderr

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    worker_args = [
        str(BIN / "celery"),
        "-A",
        "orket_site",
        "worker",
        "--pool=solo",
        "--loglevel=INFO",
        f"--hostname=it-{port}@%h",
        "--without-mingle",
        "--without-gossip",
    ]
    web_args = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "orket_site.asgi:application"]
    with (
        started(worker_args, env, tmp_path / "worker.log") as worker,
        started(web_args, env, tmp_path / "web.log") as web,
    ):
        ready = wait_for_http(f"{base_url}/readyz", process=web)
        assert ready.status_code == 200, ready.text
        assert ready.json()["mode"] == "production"

        session = login_over_http(base_url, "operator", ADMIN_PASSWORD)
        assert "Demo" in session.get("/").text

        token = httpx.post(f"{base_url}/api/auth/token/", json={"username": "operator", "password": ADMIN_PASSWORD})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Token {token.json()['token']}"}
        projects = httpx.get(f"{base_url}/api/projects/", headers=headers).json()
        assert [p["slug"] for p in projects["results"]] == ["demo"]

        ping = httpx.post(f"{base_url}/api/system/worker-ping/", headers=headers, timeout=30)
        assert ping.status_code == 200, ping.text + (tmp_path / "worker.log").read_text()[-2000:]
        # The solo pool runs tasks in the worker's own process: not the web process, not this one.
        assert ping.json()["pid"] == worker.pid
        assert ping.json()["pid"] != web.pid

        # WebSockets are served too, and events published on Redis by another process reach them.
        demo_id = projects["results"][0]["id"]
        cookie = f"sessionid={session.cookies['sessionid']}"
        with ws_connect(
            f"ws://127.0.0.1:{port}/ws/projects/{demo_id}/",
            additional_headers={"Cookie": cookie, "Origin": base_url},
            open_timeout=10,
        ) as stream:
            assert json.loads(stream.recv(timeout=10))["type"] == "hello"
            layer = RedisChannelLayer(hosts=[redis])
            async_to_sync(layer.group_send)(
                f"project_{demo_id}", {"type": "card.event", "kind": "card.changed", "card": 7}
            )
            assert json.loads(stream.recv(timeout=10)) == {"type": "card.changed", "card": 7}


def test_embedded_server_starts_like_make_run_serves_and_stops(tmp_path: Path) -> None:
    port = free_port()
    env = app_env(ORKET_DATA_DIR=str(tmp_path), ORKET_PORT=str(port))
    args = [PYTHON, "manage.py", "orket_run"]
    first_log = tmp_path / "first.log"
    with started(args, env, first_log) as server:
        login_page = wait_for_http(f"http://127.0.0.1:{port}/accounts/login/", process=server, timeout=60)
        assert login_page.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200 and ready.json()["mode"] == "embedded"
        output = first_log.read_text()
        password = output.split("with password ", 1)[1].split(" ", 1)[0]
        token = httpx.post(
            f"http://127.0.0.1:{port}/api/auth/token/", json={"username": "admin", "password": password}
        ).json()["token"]
        ping = httpx.post(
            f"http://127.0.0.1:{port}/api/system/worker-ping/", headers={"Authorization": f"Token {token}"}
        )
        assert ping.status_code == 200, ping.text
        assert ping.json()["pid"] == server.pid  # the embedded worker lives in the server process
        server.send_signal(signal.SIGINT)
        assert server.wait(20) == 0
    assert (tmp_path / "orket.sqlite3").exists()
    with closing(sqlite3.connect(tmp_path / "orket.sqlite3")) as database:
        assert database.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert "Orket stopped." in first_log.read_text()

    # A second start keeps the data and the admin, and never prints a new password.
    second_log = tmp_path / "second.log"
    with started(args, env, second_log) as server:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=server, timeout=60)
        token = httpx.post(f"http://127.0.0.1:{port}/api/auth/token/", json={"username": "admin", "password": password})
        assert token.status_code == 200
    second_output = second_log.read_text()
    assert "shown on the first run" in second_output
    assert "with password" not in second_output


def test_production_settings_pass_check_deploy(tmp_path: Path) -> None:
    env = app_env(
        ORKET_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="orket.example.com",
        CSRF_TRUSTED_ORIGINS="https://orket.example.com",
        ORKET_DATA_DIR=str(tmp_path),
    )
    result = run_manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    env = app_env(ORKET_ENV="production", ALLOWED_HOSTS="orket.example.com", ORKET_DATA_DIR=str(tmp_path))
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr
