"""In headless Chromium against the real embedded server: the Run dialog offers the profiles (the
default marked, an unreachable one flagged), the cards at a time and the token budget, and starts
the run with the chosen profile and parallelism; and no page of a seeded project asks another host
for anything (every request of every page is logged and checked)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.agents.fake_llm import FakeLLMServer, ModelServer, closed_port_url, json_error
from tests.browser.chromium import chromium_or_skip, launch_chromium, log_in_through_page, wait_until
from tests.processes import PYTHON, REPO, app_env, started, wait_for_http
from tests.services import free_port

MS = 1000
ARTIFACTS = REPO / "var" / "test-artifacts"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

API_JS = """
async ([method, url, body]) => {
  const token = document.cookie.split("; ").find((c) => c.startsWith("csrftoken=")).split("=")[1];
  const answer = await fetch(url, {
    method, headers: {"Content-Type": "application/json", "X-CSRFToken": token, Accept: "application/json"},
    body: body === null ? undefined : JSON.stringify(body),
  });
  return {status: answer.status, body: answer.status === 204 ? null : await answer.json()};
}
"""


class Site:
    def __init__(self, base: str, password: str, fake: FakeLLMServer) -> None:
        self.base = base
        self.password = password
        self.fake = fake


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    chromium_or_skip()
    tmp_path = tmp_path_factory.mktemp("run-dialog")
    port = free_port()
    password = secrets.token_urlsafe(12)
    env = app_env(ORKET_DATA_DIR=str(tmp_path / "data"), ORKET_PORT=str(port), ORKET_ADMIN_PASSWORD=password)
    (tmp_path / "data").mkdir()
    # The model server of the chosen profile: lists its models, refuses every chat (the run's fate
    # is not what this test is about).
    chat = ModelServer("openai", ["fake-coder"], lambda request: json_error(503, "fake: not serving chats"))
    command = [PYTHON, "manage.py", "orket_run"]
    with FakeLLMServer(responder=chat) as fake, started(command, env, tmp_path / "log") as server:
        wait_for_http(f"http://127.0.0.1:{port}/accounts/login/", timeout=90, process=server)
        yield Site(f"http://127.0.0.1:{port}", password, fake)


async def api(page: Any, method: str, url: str, body: Any = None) -> dict[str, Any]:
    return await page.evaluate(API_JS, [method, url, body])


async def test_the_run_dialog_starts_a_run_with_the_chosen_profile_and_parallelism(site: Site) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            page = await browser.new_page()
            page.set_default_timeout(20 * MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await log_in_through_page(page, site.base, site.password)
            for name, url in (("fake-server", site.fake.base_url), ("gone-server", closed_port_url())):
                made = await api(
                    page,
                    "POST",
                    "/api/model-profiles/",
                    {"name": name, "provider": "openai", "base_url": url, "model": "fake-coder"},
                )
                assert made["status"] == 201, made
            projects = (await api(page, "GET", "/api/projects/"))["body"]["results"]
            project = next(item for item in projects if item["slug"] == "demo")
            epic = (await api(page, "GET", f"/api/epics/?project={project['id']}"))["body"]["results"][0]

            await page.goto(f"{site.base}/projects/{project['id']}/board/?epic={epic['id']}")
            await page.wait_for_selector("#board[data-ready='1']")
            await page.click("#run-epic")
            await page.wait_for_selector("#run-dialog[open] #run-start:not([disabled])")
            gone = page.locator("#run-profile option[value='gone-server']")
            assert await gone.get_attribute("data-reachable") == "false"
            assert "not reachable" in (await gone.text_content() or "")
            fake = page.locator("#run-profile option[value='fake-server']")
            assert await fake.get_attribute("data-reachable") == "true"
            assert await page.locator("#run-profile option[data-default='true']").count() == 1
            assert await page.get_attribute("#run-parallel", "max") == "8"
            assert "embedded default" in (await page.text_content("#run-parallel-note") or "")
            assert "Estimated token budget: up to" in (await page.text_content("#run-budget") or "")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "run-dialog.png"))

            await page.select_option("#run-profile", "fake-server")
            await page.fill("#run-parallel", "1")
            await page.click("#run-start")
            link = page.locator("#started-run")
            await link.wait_for()
            run_id = int((await link.text_content() or "#0").lstrip("#"))
            run = (await api(page, "GET", f"/api/runs/{run_id}/"))["body"]
            assert (run["model_profile"], run["profile_is_override"], run["max_parallel"]) == ("fake-server", True, 1)
            await api(page, "POST", f"/api/runs/{run_id}/cancel/")
            await wait_until(
                page,
                f"fetch('/api/runs/{run_id}/').then(r => r.json())"
                ".then(r => r.status === 'canceled' || r.status === 'failed')",
            )
            assert errors == [], errors
        finally:
            await browser.close()


async def test_no_page_requests_another_host(site: Site) -> None:
    from playwright.async_api import async_playwright

    own_host = urlsplit(site.base).netloc
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            page = await browser.new_page()
            page.set_default_timeout(20 * MS)
            requested: list[tuple[str, str]] = []
            page.on("request", lambda request: requested.append((page.url, request.url)))
            await page.goto(f"{site.base}/admin/login/")
            await log_in_through_page(page, site.base, site.password)
            projects = (await api(page, "GET", "/api/projects/"))["body"]["results"]
            project = next(item for item in projects if item["slug"] == "demo")["id"]
            epic = (await api(page, "GET", f"/api/epics/?project={project}"))["body"]["results"][0]["id"]
            card = (await api(page, "GET", f"/api/cards/?epic={epic}"))["body"]["results"][0]["id"]
            runs = (await api(page, "GET", f"/api/runs/?project={project}"))["body"]["results"]
            pages = [
                "/",
                f"/projects/{project}/board/",
                f"/projects/{project}/board/?epic={epic}",
                f"/epics/{epic}/",
                f"/projects/{project}/settings/",
                f"/projects/{project}/import/",
                f"/projects/{project}/runs/",
                f"/projects/{project}/sandboxes/",
                f"/projects/{project}/settings/gitea/",
                "/teams/",
                "/settings/models/",
                "/settings/models/new/",
                "/api/docs/",
                "/api/",
                "/accounts/password/",
                "/admin/",
            ]
            pages += [f"/runs/{run['id']}/" for run in runs[:1]] + [f"/runs/{run['id']}/replay/" for run in runs[:1]]
            for path in pages:
                answer = await page.goto(site.base + path)
                assert answer is not None and answer.status < 400, (path, answer and answer.status)
                await page.wait_for_load_state("networkidle")
                if path in ("/settings/models/", "/teams/"):
                    ARTIFACTS.mkdir(parents=True, exist_ok=True)
                    name = "model-profiles.png" if "models" in path else "teams.png"
                    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)
            # The card drawer of the board.
            await page.goto(f"{site.base}/projects/{project}/board/?epic={epic}")
            await page.wait_for_selector("#board[data-ready='1']")
            await page.click(f'.board-card[data-card="{card}"]')
            await page.wait_for_selector("#drawer:not([hidden])")
            await page.wait_for_load_state("networkidle")
            favicon = await page.goto(site.base + "/favicon.ico")
            assert favicon is not None and favicon.status == 200
            assert favicon.headers.get("content-type", "").startswith("image/")
        finally:
            await browser.close()

    foreign = [
        (on, url)
        for on, url in requested
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).netloc != own_host
    ]
    assert requested and foreign == [], foreign
    assert any(url.endswith("swagger-ui-bundle.js") for _, url in requested)
