"""`make run` (manage.py orket_run) as a new user sees it: readable start lines naming the URL, the
user, the data directory and the model; housekeeping that did nothing stays silent; JSON lines when
ORKET_LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from orket_site.logging import QuietHousekeepingFilter
from tests.processes import PYTHON, app_env, started
from tests.services import free_port

pytestmark = pytest.mark.timeout(180)

READY = "Orket is serving at"


def serve_and_read(tmp_path: Path, settle_seconds: float = 0.0, **env: str | None) -> str:
    """Start orket_run with a fresh data directory, wait until it serves (and `settle_seconds` more),
    stop it, and return everything it printed."""
    data = tmp_path / "data"
    port = free_port()
    log = tmp_path / "server.log"
    environment = app_env(ORKET_DATA_DIR=str(data), ORKET_PORT=str(port), **env)
    with started([PYTHON, "manage.py", "orket_run"], environment, log) as server:
        deadline = time.monotonic() + 90
        while READY not in log.read_text():
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(settle_seconds)  # beat runs the housekeeping every second meanwhile
    return log.read_text()


def test_start_lines_are_readable_and_housekeeping_that_did_nothing_is_silent(tmp_path: Path) -> None:
    # No ORKET_LOG_FORMAT, as with `make run`.
    output = serve_and_read(tmp_path, settle_seconds=4.0, ORKET_REAP_SECONDS="1", ORKET_LOG_FORMAT=None)
    data = tmp_path / "data"
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(READY))
    url, user, where, model = lines[start : start + 4]
    assert url.startswith(f"{READY} http://127.0.0.1:") and "Ctrl-C" in url
    assert user.strip().startswith("User:  Log in as 'admin' with password ")
    assert where.strip() == f"Data:  {data.resolve()} (database: sqlite3)"
    assert model.strip().startswith("Model: ") and ("scripted team" in model or "Ollama answers" in model)
    assert not any(line.lstrip().startswith("{") for line in lines), output
    assert "turns_reap_stale" not in output and "Sending due task" not in output, output


def test_json_log_lines_when_asked(tmp_path: Path) -> None:
    output = serve_and_read(tmp_path, ORKET_LOG_FORMAT="json")
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(r["logger"] == "orket.embedded" and "started" in r["message"] for r in records), output
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def celery_success(task: str, returned: str) -> logging.LogRecord:
    return logging.LogRecord(
        "celery.app.trace",
        logging.INFO,
        __file__,
        1,
        "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
        ({"name": task, "id": "x", "runtime": 0.01, "return_value": returned},),
        None,
    )


def test_housekeeping_lines_pass_only_when_the_task_did_something(settings: object) -> None:
    quiet = QuietHousekeepingFilter()
    assert not quiet.filter(celery_success("agents.turns_reap_stale", "0"))
    assert not quiet.filter(celery_success("sandboxes.sandboxes_cleanup", "{}"))
    assert quiet.filter(celery_success("agents.turns_reap_stale", "2"))
    assert quiet.filter(celery_success("agents.run_advance", "None"))  # not housekeeping: kept
    sent = logging.LogRecord(
        "celery.beat",
        logging.INFO,
        __file__,
        1,
        "Scheduler: Sending due task %s (%s)",
        ("reap", "agents.turns_reap_stale"),
        None,
    )
    assert not quiet.filter(sent)
