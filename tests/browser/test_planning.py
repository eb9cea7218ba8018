"""From an empty install to a finished epic in headless Chromium, all in the browser: create a project
and an epic, plan it with the scripted team's architect, edit the draft (remove a card, add a
dependency), see a cycle refused with the cycle named, accept, run it from the Run dialog with a chosen
profile and one card at a time, and see every card done."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest

from tests.browser.chromium import chromium_or_skip, launch_chromium, log_in_through_page, wait_until
from tests.processes import PYTHON, REPO, app_env, started, wait_for_http
from tests.services import free_port

ARTIFACTS = REPO / "var" / "test-artifacts"
MS = 1000
DESCRIPTION = """Unit conversions for the shop.

- Convert metres to feet
- Convert kilograms to pounds
- Convert Celsius to Fahrenheit
"""
RUN_JS = "async (run) => (await fetch(`/api/runs/${run}/`)).json()"
CARDS_JS = "async (epic) => (await (await fetch(`/api/cards/?epic=${epic}&page_size=100`)).json()).results"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_create_plan_edit_accept_and_run_an_epic_in_the_browser(tmp_path: Path) -> None:
    chromium_or_skip()
    from playwright.async_api import async_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    (tmp_path / "data").mkdir()
    env = app_env(ORKET_DATA_DIR=str(tmp_path / "data"), ORKET_PORT=str(port), ORKET_ADMIN_PASSWORD=password)
    page_errors: list[str] = []
    with started([PYTHON, "manage.py", "orket_run"], env, tmp_path / "server.log") as server:
        wait_for_http(f"{base}/accounts/login/", timeout=60, process=server)
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 900})
                context.set_default_timeout(20 * MS)
                page = await context.new_page()
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                await log_in_through_page(page, base, password)

                # New project from the project list; its board offers New epic.
                await page.goto(f"{base}/")
                await page.fill("#id_name", "Shop tools")
                await page.fill("#id_description", "Small tools for the shop.")
                async with page.expect_navigation():
                    await page.click("#new-project-create")
                project_id = int(page.url.split("/projects/")[1].split("/")[0])
                await page.wait_for_selector("#new-epic")

                # The scripted team finishes cards without verification fixtures only when none is required.
                await page.goto(f"{base}/projects/{project_id}/settings/")
                await page.uncheck("#require-verification")
                async with page.expect_navigation():
                    await page.click("#governance button[type=submit]")

                # New epic with a description; an empty name is refused inline first.
                await page.goto(f"{base}/projects/{project_id}/board/")
                async with page.expect_navigation():
                    await page.click("#new-epic")
                async with page.expect_navigation():
                    await page.click("#epic-save")
                assert await page.locator("#error-name").count() == 1
                await page.fill("#id_name", "Conversions")
                await page.fill("#id_description", DESCRIPTION)
                async with page.expect_navigation():
                    await page.click("#epic-save")
                epic_id = int(page.url.split("epic=")[1])

                # Plan: the architect drafts while the page follows it.
                async with page.expect_navigation():
                    await page.click("#plan-epic")
                async with page.expect_navigation():
                    await page.click("#plan-request")
                assert "/plans/" in page.url
                await page.wait_for_selector("#plan-page[data-status=draft]")
                cards = page.locator("#plan-cards .plan-card")
                assert await cards.count() == 4
                summaries = await page.eval_on_selector_all(".plan-summary", "nodes => nodes.map(n => n.value)")
                assert summaries == [
                    "Design Conversions",
                    "Convert metres to feet",
                    "Convert kilograms to pounds",
                    "Convert Celsius to Fahrenheit",
                ]
                assert await page.evaluate(CARDS_JS, epic_id) == []  # nothing exists before Accept

                # Edit: remove the last card, make the pounds card wait for the feet card too.
                await page.click("#plan-cards .plan-card[data-index='3'] .plan-remove")
                assert await cards.count() == 3
                await page.check("#plan-cards .plan-card[data-index='2'] .plan-dep[value='item-1']")

                # A dependency that closes a cycle is refused with the cycle named, and nothing is created.
                await page.check("#plan-cards .plan-card[data-index='0'] .plan-dep[value='item-2']")
                await page.click("#plan-accept")
                problems = page.locator("#plan-problems")
                await problems.wait_for()
                text = await problems.text_content() or ""
                assert "cycle" in text and "'Design Conversions' -> " in text, text
                assert await page.evaluate(CARDS_JS, epic_id) == []
                await page.screenshot(path=str(tmp_path / "plan-draft.png"), full_page=True)
                await page.uncheck("#plan-cards .plan-card[data-index='0'] .plan-dep[value='item-2']")

                # Accept creates the three cards with their dependencies.
                await page.click("#plan-accept")
                await page.wait_for_selector("#plan-page[data-status=accepted]")
                created = {card["title"]: card for card in await page.evaluate(CARDS_JS, epic_id)}
                assert sorted(created) == [
                    "Convert kilograms to pounds",
                    "Convert metres to feet",
                    "Design Conversions",
                ]
                pounds = created["Convert kilograms to pounds"]
                assert sorted(pounds["depends_on"]) == sorted(
                    [created["Design Conversions"]["id"], created["Convert metres to feet"]["id"]]
                )

                # Run it from the board; every card ends done.
                async with page.expect_navigation():
                    await page.click("#plan-board-link")
                await page.wait_for_selector("#board[data-ready='1']")
                assert await page.locator("#board .board-card").count() == 3
                # The Run dialog: the scripted profile chosen, one card at a time.
                await page.click("#run-epic")
                await page.wait_for_selector("#run-dialog[open] #run-start:not([disabled])")
                await page.select_option("#run-profile", "scripted-demo")
                await page.fill("#run-parallel", "1")
                await page.click("#run-start")
                link = page.locator("#started-run")
                await link.wait_for()
                run_id = int((await link.text_content() or "#0").lstrip("#"))
                run = await page.evaluate(RUN_JS, run_id)
                assert (run["model_profile"], run["profile_is_override"], run["max_parallel"]) == (
                    "scripted-demo",
                    True,
                    1,
                ), run
                await wait_until(
                    page,
                    "document.querySelectorAll('#board .column[data-status=done] .board-card').length === 3",
                    timeout=150 * MS,
                    interval=0.5,
                )
                statuses = {card["status"] for card in await page.evaluate(CARDS_JS, epic_id)}
                assert statuses == {"done"}, statuses
            finally:
                await browser.close()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "plan-draft.png", ARTIFACTS / "plan-draft.png")
    assert page_errors == [], page_errors
