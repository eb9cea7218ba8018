"""Approving, rejecting and answering from the browser, in headless Chromium against the real embedded
server (daphne, the embedded Celery worker) with the scripted team.

The demo project's approval list is set to write_file, so the scripted coder's writes wait for a
person. The admin rejects the first write in the card drawer (the coder reads the reason and writes
again in the next step of the same turn) and approves the others on the run view; the turn's steps
on record and in the run view show where each decision came, and the drawer's history says who made
it. Then a second card is blocked with a question, answered in the drawer, and the next turn's prompt
holds the answer.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.browser.chromium import chromium_or_skip, launch_chromium, log_in_through_page, wait_until
from tests.processes import PYTHON, REPO, app_env, login_over_http, started, wait_for_http
from tests.services import free_port

ARTIFACTS = REPO / "var" / "test-artifacts"
MS = 1000
REJECTION = "Keep the module small, please."
ANSWER = "Use snake_case names and keep describe() pure."

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@dataclass
class Server:
    base: str
    password: str
    api: httpx.Client
    project: int
    epic: int

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"X-CSRFToken": self.api.cookies["csrftoken"]}
        response = self.api.request(method, path, json=body, headers=headers)
        assert response.status_code in (200, 201), (path, response.status_code, response.text[:300])
        return response.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    chromium_or_skip()
    tmp_path = tmp_path_factory.mktemp("approvals")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    env = app_env(ORKET_DATA_DIR=str(tmp_path / "data"), ORKET_PORT=str(port), ORKET_ADMIN_PASSWORD=password)
    (tmp_path / "data").mkdir()
    with started([PYTHON, "manage.py", "orket_run"], env, tmp_path / "server.log") as process:
        wait_for_http(f"{base}/accounts/login/", timeout=60, process=process)
        client = login_over_http(base, "admin", password)
        projects = client.get("/api/projects/").json()
        project = next(item for item in projects.get("results", projects) if item["slug"] == "demo")
        epics = client.get(f"/api/epics/?project={project['id']}").json()["results"]
        try:
            yield Server(base, password, client, project["id"], epics[0]["id"])
        finally:
            client.close()


def ready_cards(server: Server) -> list[int]:
    cards = server.call("GET", f"/api/cards/?epic={server.epic}&page_size=100")
    return [card["id"] for card in cards["results"] if card["status"] == "ready"]


def wait_for_run(server: Server, run: int, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = server.call("GET", f"/api/runs/{run}/")
        if body["status"] in ("succeeded", "failed", "canceled"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"run {run} did not end: {body}")


PENDING = "#drawer-waiting .approval-pending"
RUN_PENDING = "#run-approvals .approval-pending"

STEPS_JS = """
() => Array.from(document.querySelectorAll("#transcript section.step")).map((step) => ({
  number: Number(step.dataset.step),
  approvals: Array.from(step.querySelectorAll(".approval-line")).map((line) => line.textContent),
}))
"""


async def _open_card(page: Any, server: Server, card: int) -> None:
    await page.goto(f"{server.base}/projects/{server.project}/board/?epic={server.epic}")
    await page.wait_for_selector("#board[data-ready='1']")
    await wait_until(page, "window.orketBoard.state().connected && window.orketBoard.state().drawn")
    await page.click(f'.board-card[data-card="{card}"]')
    await page.wait_for_selector(f"#drawer[data-loaded='{card}']")


async def test_approve_and_reject_in_the_drawer_and_run_view_and_answer_a_blocked_card(server: Server) -> None:
    from playwright.async_api import async_playwright

    server.call("PUT", f"/api/projects/{server.project}/approval-tools/", {"tools": ["write_file"]})
    card, asked = ready_cards(server)[:2]
    run = server.call("POST", f"/api/cards/{card}/runs/", {"model_profile": "scripted-demo"})["id"]
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1000})
            context.set_default_timeout(30 * MS)
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            await log_in_through_page(page, server.base, server.password)

            # The first write waits: the drawer shows the call; Reject needs a reason.
            await _open_card(page, server, card)
            await page.wait_for_selector(f"{PENDING} .approval-reject", timeout=60 * MS)
            first = page.locator(PENDING).first
            rejected_id = await first.get_attribute("data-approval")
            rejected_step = int(await first.get_attribute("data-step") or 0)
            assert "write_file" in (await first.locator(".approval-call").text_content() or "")
            await first.locator(".approval-reject").click()
            assert "Say why" in (await first.locator(".error").text_content() or "")
            await first.locator(".approval-reason").fill(REJECTION)
            await first.locator(".approval-reject").click()

            # The coder reads the reason and writes again, in the next step of the same turn.
            retry = f"{PENDING}:not([data-approval='{rejected_id}'])"
            await page.wait_for_selector(retry, timeout=60 * MS)
            retry_step = int(await page.locator(retry).first.get_attribute("data-step") or 0)
            assert retry_step == rejected_step + 1
            history = page.locator("#drawer-history")
            await wait_until(
                page, "document.querySelector('#drawer-history').textContent.includes('admin rejected write_file')"
            )

            # The rest are approved on the run view, where the decided calls stay listed.
            await page.goto(f"{server.base}/runs/{run}/")
            approved_steps = []
            while True:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if await page.locator(f"{RUN_PENDING} .approval-approve").count():
                        break
                    if server.call("GET", f"/api/runs/{run}/")["status"] != "running":
                        break
                    await page.wait_for_timeout(100)
                pending = page.locator(RUN_PENDING).first
                if not await page.locator(f"{RUN_PENDING} .approval-approve").count():
                    break
                approved_steps.append(int(await pending.get_attribute("data-step") or 0))
                await pending.locator(".approval-approve").click()
                await page.wait_for_selector(f"#run-approvals [data-step='{approved_steps[-1]}'].approval-approved")
            finished = wait_for_run(server, run)
            assert finished["status"] == "succeeded", finished
            assert approved_steps and approved_steps[0] == retry_step, approved_steps

            # On record: the turn went on at the decided steps; nothing was asked twice.
            turns = server.call("GET", f"/api/runs/{run}/turns/")["results"]
            work = next(turn for turn in turns if turn["card"] == card and turn["number"] == 1)
            steps = {step["number"]: step for step in work["steps"]}
            assert sorted(steps) == list(range(1, len(steps) + 1))
            assert steps[rejected_step]["calls"][0]["decision"] == "rejected"
            assert steps[rejected_step]["calls"][0]["message"] == f"rejected by admin: {REJECTION}"
            for step in approved_steps:
                assert steps[step]["calls"][0]["decision"] == "executed"
                assert steps[step]["calls"][0]["approved_by"] == "admin"
            # The run view puts each request and decision in its step.
            await wait_until(page, "window.orketRun.state().done", timeout=30 * MS)
            shown = {step["number"]: step["approvals"] for step in await page.evaluate(STEPS_JS)}
            assert any("Rejected by admin" in line for line in shown[rejected_step]), shown
            assert any("Approved by admin" in line for line in shown[retry_step]), shown
            await page.screenshot(path=str(ARTIFACTS / "run-approvals.png"), full_page=True)

            # The drawer's history says who approved.
            await _open_card(page, server, card)
            await wait_until(
                page, "document.querySelector('#drawer-history').textContent.includes('admin approved write_file')"
            )
            assert "admin" in (await history.text_content() or "")

            # A blocked card: its question and the Answer box; the answer sends it back to ready.
            server.call("POST", f"/api/cards/{asked}/transition/", {"status": "in_progress"})
            question = "Which naming style should the module use?"
            server.call(
                "POST",
                f"/api/cards/{asked}/transition/",
                {"status": "blocked", "wait_reason": "input", "reason": question},
            )
            await _open_card(page, server, asked)
            await page.wait_for_selector("#drawer-waiting .answer-question")
            assert question in (await page.text_content("#drawer-waiting .answer-question") or "")
            await page.fill("#answer-body", ANSWER)
            await page.click("#drawer-waiting .answer-send")
            await page.wait_for_selector("#drawer-waiting .answer-note:has-text('press Run')")
            await page.wait_for_selector(f'#board .column[data-status="ready"] .board-card[data-card="{asked}"]')
            # Redrawn for the card's move to ready, the drawer still says what to do next.
            await wait_until(page, "!document.querySelector('#drawer-waiting .answer-form')")
            assert "press Run" in (await page.text_content("#drawer-waiting .answer-note") or "")
            await page.screenshot(path=str(ARTIFACTS / "card-answered.png"))
        finally:
            await browser.close()
    assert errors == []

    # The next turn on the card is prompted with the answer.
    server.call("PUT", f"/api/projects/{server.project}/approval-tools/", {"tools": []})
    second = server.call("POST", f"/api/cards/{asked}/runs/", {"model_profile": "scripted-demo"})["id"]
    wait_for_run(server, second)
    turns = server.call("GET", f"/api/runs/{second}/turns/")["results"]
    first_turn = next(turn for turn in turns if turn["card"] == asked and turn["number"] == 1)
    assert ANSWER in first_turn["messages"][1]["content"]
