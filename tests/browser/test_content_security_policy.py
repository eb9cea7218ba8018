"""The pages under their Content-Security-Policy in headless Chromium against the real embedded
server: the board (with its live WebSocket), a run view following a run, the epic, import and
settings pages and the API docs (Swagger UI) render with no policy violation in the console, and no
page asks another host for anything."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.chromium import chromium_or_skip, launch_chromium, log_in_through_page, wait_until
from tests.browser.test_run_view import START_RUN_JS
from tests.processes import PYTHON, app_env, started, wait_for_http
from tests.services import free_port

MS = 1000
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

DEMO_JS = """
async () => {
  const projects = await (await fetch("/api/projects/")).json();
  const project = (projects.results || projects).find((item) => item.slug === "demo");
  const epics = await (await fetch(`/api/epics/?project=${project.id}`)).json();
  return {project: project.id, epic: epics.results[0].id};
}
"""


async def test_pages_run_under_the_policy_without_violations_or_other_hosts(tmp_path: Path) -> None:
    chromium_or_skip()
    from playwright.async_api import async_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    env = app_env(ORKET_DATA_DIR=str(tmp_path / "data"), ORKET_PORT=str(port), ORKET_ADMIN_PASSWORD=password)
    (tmp_path / "data").mkdir()
    violations: list[str] = []
    page_errors: list[str] = []
    other_hosts: list[str] = []

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(f"{message.type}: {message.text}")

    def on_request(request: Any) -> None:
        address = urlsplit(request.url)
        if address.scheme in ("http", "https", "ws", "wss") and address.netloc != f"127.0.0.1:{port}":
            other_hosts.append(request.url)

    with started([PYTHON, "manage.py", "orket_run"], env, tmp_path / "server.log") as server:
        wait_for_http(f"{base}/accounts/login/", timeout=60, process=server)
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 800})
                context.set_default_timeout(20 * MS)
                page = await context.new_page()
                page.on("console", on_console)
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                page.on("request", on_request)
                await log_in_through_page(page, base, password)
                demo = await page.evaluate(DEMO_JS)

                response = await page.goto(f"{base}/projects/{demo['project']}/board/?epic={demo['epic']}")
                assert "default-src 'self'" in (await response.all_headers())["content-security-policy"]
                await page.wait_for_selector("#board[data-ready='1']")
                await wait_until(page, "window.orketBoard.state().connected")  # the WebSocket under connect-src

                started_run = await page.evaluate(START_RUN_JS, demo["epic"])
                assert started_run["status"] == 201, started_run
                await page.goto(f"{base}/runs/{started_run['body']['id']}/")
                await wait_until(page, "window.orketRun.state().connected")
                await page.wait_for_selector("#transcript .chunk", timeout=45 * MS)

                await page.goto(f"{base}/epics/{demo['epic']}/")
                await page.wait_for_selector("#epic-flow-chart, canvas")
                width = await page.evaluate("document.querySelector('#progress .progress span').style.width")
                assert width.endswith("%"), width
                await page.goto(f"{base}/projects/{demo['project']}/import/")
                await page.goto(f"{base}/projects/{demo['project']}/settings/")

                await page.goto(f"{base}/api/docs/")
                await page.wait_for_selector(".swagger-ui .info .title", timeout=30 * MS)
                await page.wait_for_selector(".opblock", timeout=30 * MS)
                await page.screenshot(path=str(tmp_path / "api-docs.png"))
            finally:
                await browser.close()

    assert not violations, "\n".join(violations)
    assert not page_errors, "\n".join(page_errors)
    assert not other_hosts, "\n".join(other_hosts)
