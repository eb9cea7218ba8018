"""Starting Orket's real processes (daphne, Celery, the embedded server) for integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def app_env(**overrides: str | None) -> dict[str, str]:
    """The environment for a child process running the real settings (not the test settings)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ORKET_TEST_", "DATABASE_URL", "REDIS_URL", "PYTEST", "ORKET_"))
    }
    env["DJANGO_SETTINGS_MODULE"] = "orket_site.settings"
    env["ORKET_LOG_FORMAT"] = "json"
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_manage(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen[str] | None = None) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            return httpx.get(url, timeout=2.0)
        except httpx.TransportError as error:
            last_error = error
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s: {last_error}")


@contextmanager
def started(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Run a process for the duration of the block, then stop it with SIGINT (SIGKILL if it hangs)."""
    with log_path.open("w") as log:
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[str], timeout: float = 15.0) -> int | None:
    if process.poll() is None:
        process.send_signal(2)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def login_over_http(base_url: str, username: str, password: str) -> httpx.Client:
    """Log in through the real login form (CSRF and session cookie) and return the logged-in client."""
    client = httpx.Client(base_url=base_url, timeout=10.0)
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": f"{base_url}/accounts/login/"},
    )
    if response.status_code != 302:
        raise AssertionError(f"login failed with {response.status_code}: {response.text[:300]}")
    return client
