"""The sandboxes page in headless Chromium against the real embedded server: a local sandbox prints a
line every 100 ms, and the log panel shows new lines as they come over the WebSocket, without one
request to the old polling endpoint; after a dropped socket it resumes with no line lost or twice."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import chromium_or_skip, launch_chromium, log_in_through_page, wait_until
from tests.processes import PYTHON, app_env, started, wait_for_http
from tests.sandboxes.test_sandbox_log_stream import write_ticker
from tests.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

DEMO_PROJECT = 1
POLLING = re.compile(r"/api/sandboxes/\d+/logs/")

START_SANDBOX_JS = """
async (project) => {
  const token = (document.cookie.match(/(?:^|; )csrftoken=([^;]*)/) || [])[1] || "";
  const response = await fetch("/api/sandboxes/", {
    method: "POST",
    headers: {"X-CSRFToken": decodeURIComponent(token), "Content-Type": "application/json"},
    body: JSON.stringify({project}),
  });
  return {status: response.status, body: await response.json()};
}
"""

SANDBOX_STATUS_JS = "async (id) => (await (await fetch(`/api/sandboxes/${id}/`)).json()).status"
STOP_SANDBOX_JS = """
async (id) => {
  const token = (document.cookie.match(/(?:^|; )csrftoken=([^;]*)/) || [])[1] || "";
  await fetch(`/api/sandboxes/${id}/delete/`, {method: "POST", headers: {"X-CSRFToken": decodeURIComponent(token)}});
}
"""
LINES_JS = (
    "Array.from(document.querySelectorAll('#sandbox-logs-text .log-line'), "
    "(n) => [Number(n.dataset.seq), n.textContent])"
)


async def test_the_sandbox_page_streams_logs_without_polling(tmp_path: Path) -> None:
    chromium_or_skip()
    from playwright.async_api import async_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    data = tmp_path / "data"
    data.mkdir()
    env = app_env(
        ORKET_DATA_DIR=str(data),
        ORKET_PORT=str(port),
        ORKET_ADMIN_PASSWORD=password,
        ORKET_SANDBOX_BACKEND="local",
        ORKET_SANDBOX_HEALTH_TIMEOUT="60",
    )
    page_errors: list[str] = []
    requests: list[str] = []
    with started([PYTHON, "manage.py", "orket_run"], env, tmp_path / "server.log") as server:
        wait_for_http(f"{base}/accounts/login/", timeout=60, process=server)
        write_ticker(data / "workspaces" / f"project-{DEMO_PROJECT}" / "repo")
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            sandbox_id = None
            try:
                page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                page.on("request", lambda request: requests.append(request.url))
                await log_in_through_page(page, base, password)
                await page.goto(f"{base}/projects/{DEMO_PROJECT}/sandboxes/")
                created: dict[str, Any] = await page.evaluate(START_SANDBOX_JS, DEMO_PROJECT)
                assert created["status"] == 202, created
                sandbox_id = created["body"]["id"]
                assert created["body"]["log_stream"]
                for _ in range(600):
                    status = await page.evaluate(SANDBOX_STATUS_JS, sandbox_id)
                    if status != "creating":
                        break
                    await asyncio.sleep(0.1)
                assert status == "running", (tmp_path / "server.log").read_text()[-3000:]

                await page.goto(f"{base}/projects/{DEMO_PROJECT}/sandboxes/")
                await page.click(f"tr[data-sandbox='{sandbox_id}'] button[data-action=logs]")
                await wait_until(page, "document.querySelectorAll('#sandbox-logs-text .log-line').length >= 5")
                requests.clear()
                first = len(await page.evaluate(LINES_JS))
                await wait_until(
                    page, f"document.querySelectorAll('#sandbox-logs-text .log-line').length >= {first + 15}"
                )
                assert [url for url in requests if POLLING.search(url)] == []  # new lines without polling

                # A dropped socket resumes after its last line.
                await page.evaluate("window.orketSandboxLogs.current().dropConnection()")
                seen = len(await page.evaluate(LINES_JS))
                await wait_until(
                    page, f"document.querySelectorAll('#sandbox-logs-text .log-line').length >= {seen + 15}"
                )
                lines = await page.evaluate(LINES_JS)
                assert [seq for seq, _ in lines] == list(range(lines[0][0], lines[0][0] + len(lines)))
                ticks = [int(m[1]) for _, text in lines if (m := re.match(r"tick (\d+) ", text))]
                assert ticks == list(range(ticks[0], ticks[0] + len(ticks))) and len(ticks) >= 30
                assert [url for url in requests if POLLING.search(url)] == []
                assert page_errors == []
            finally:
                if sandbox_id is not None:
                    await page.evaluate(STOP_SANDBOX_JS, sandbox_id)
                    for _ in range(200):
                        if await page.evaluate(SANDBOX_STATUS_JS, sandbox_id) == "deleted":
                            break
                        await asyncio.sleep(0.1)
                await browser.close()
