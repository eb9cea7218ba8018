"""The board in headless Chromium against the real embedded server: create a card, drag it, see a
refused move snap back with the server's reason, be asked for a wait reason, watch a second browser
follow a move live, and keep filters through a reload. Screenshots of the board and the card drawer
are kept as test artifacts."""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import chromium_or_skip, launch_chromium, log_in_through_page, wait_until
from tests.processes import PYTHON, REPO, app_env, started, wait_for_http
from tests.services import free_port

ARTIFACTS = REPO / "var" / "test-artifacts"
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

CARD_JS = "async (id) => (await fetch(`/api/cards/${id}/`)).json()"


def _card(card_id: int) -> str:
    return f'.board-card[data-card="{card_id}"]'


async def _menu(page: Any, card_id: int, choice: str) -> None:
    """Choose an entry of a card's move menu (a status, or order:up/down/top/bottom)."""
    await page.click(f"{_card(card_id)} .move-button")
    await page.click(f'#move-popup [role=menuitem][data-value="{choice}"]')


def _column(status: str) -> str:
    return f'#board .column[data-status="{status}"]'


async def test_board_moves_are_governed_live_and_filters_survive_a_reload(tmp_path: Path) -> None:
    chromium_or_skip()
    from playwright.async_api import async_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    env = app_env(ORKET_DATA_DIR=str(tmp_path / "data"), ORKET_PORT=str(port), ORKET_ADMIN_PASSWORD=password)
    (tmp_path / "data").mkdir()
    page_errors: list[str] = []
    with started([PYTHON, "manage.py", "orket_run"], env, tmp_path / "server.log") as server:
        wait_for_http(f"{base}/accounts/login/", timeout=60, process=server)
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 800})
                context.set_default_timeout(20 * MS)
                page = await context.new_page()
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                await log_in_through_page(page, base, password)
                demo = await page.evaluate(DEMO_JS)
                board_url = f"{base}/projects/{demo['project']}/board/?epic={demo['epic']}"
                await page.goto(board_url)
                await page.wait_for_selector("#board[data-ready='1']")
                await wait_until(page, "window.orketBoard.state().connected")

                # Create a card with the keyboard shortcut n.
                await page.keyboard.press("n")
                await page.fill("#new-card-title", "Write the board guide")
                await page.fill("#new-card-seat", "writer")
                await page.click("#new-ok")
                created = page.locator("#board .board-card", has_text="Write the board guide")
                await created.wait_for()
                card_id = int(await created.get_attribute("data-card") or 0)
                assert await page.locator(f"{_column('ready')} {_card(card_id)}").count() == 1
                # The board hears its own creation back over the WebSocket; let that redraw settle first.
                await wait_until(
                    page, f"window.orketBoard.state().heard.includes({card_id}) && window.orketBoard.state().idle"
                )

                # Drag it to in_progress: it stays there, also after a reload.
                await page.drag_and_drop(_card(card_id), _column("in_progress"))
                await wait_until(page, "window.orketBoard.state().moves >= 1")
                assert (await page.evaluate(CARD_JS, card_id))["status"] == "in_progress"
                await page.reload()
                await page.wait_for_selector("#board[data-ready='1']")
                await page.wait_for_selector(f"{_column('in_progress')} {_card(card_id)}")

                # A ready card dragged straight to done snaps back with the server's reason.
                ready_id = int(
                    await page.locator(f"{_column('ready')} .board-card").first.get_attribute("data-card") or 0
                )
                await page.drag_and_drop(_card(ready_id), _column("done"))
                error = page.locator(f"{_column('ready')} {_card(ready_id)} .card-error")
                await error.wait_for()
                reason = await error.text_content() or ""
                assert "ready" in reason and "done" in reason, reason
                assert (await page.evaluate(CARD_JS, ready_id))["status"] == "ready"
                assert await page.locator(f"{_column('done')} {_card(ready_id)}").count() == 0

                # Moving to blocked asks for the wait reason first.
                await page.drag_and_drop(_card(card_id), _column("blocked"))
                await page.wait_for_selector("#wait-dialog[open]")
                assert await page.locator("#wait-dialog input[type=radio]").count() == 4
                await page.check("#wait-dialog input[value=input]")
                await page.fill("#wait-note", "Which audience?")
                await page.click("#wait-ok")
                badge = page.locator(f"{_column('blocked')} {_card(card_id)} [data-flag=blocked]")
                await badge.wait_for()
                assert "input" in (await badge.text_content() or "")

                # A second browser on the same board sees a move by the first within a couple of seconds.
                other_context = await browser.new_context(viewport={"width": 1280, "height": 800})
                other_context.set_default_timeout(20 * MS)
                other = await other_context.new_page()
                other.on("pageerror", lambda error: page_errors.append(str(error)))
                await log_in_through_page(other, base, password)
                await other.goto(board_url)
                await other.wait_for_selector("#board[data-ready='1']")
                await wait_until(other, "window.orketBoard.state().connected")
                await other.wait_for_selector(f"{_column('blocked')} {_card(card_id)}")
                # The move menu on the card: blocked to in_progress.
                await _menu(page, card_id, "in_progress")
                began = time.monotonic()
                await other.wait_for_selector(f"{_column('in_progress')} {_card(card_id)}", timeout=3 * MS)
                live_seconds = time.monotonic() - began
                assert live_seconds < 2.0, live_seconds

                # Filters narrow the board and survive a reload through the URL.
                await page.select_option("#filter-seat", "writer")
                await page.fill("#filter-q", "guide")
                await wait_until(page, "location.search.includes('q=guide')")
                assert "seat=writer" in page.url
                await page.reload()
                await page.wait_for_selector("#board[data-ready='1']")
                assert await page.input_value("#filter-q") == "guide"
                assert await page.input_value("#filter-seat") == "writer"
                assert await page.locator("#board .board-card").count() == 1

                await page.click("#filter-clear")
                await page.screenshot(path=str(tmp_path / "board.png"))

                # The drawer opens with Enter, shows the history, and Escape closes it.
                await page.focus(_card(card_id))
                await page.keyboard.press("Enter")
                await page.wait_for_selector("#drawer:not([hidden])")
                await page.wait_for_selector("#drawer-history li")
                await page.fill("#comment-body", "Draft is on the wiki.\n<b>not bold</b>")
                await page.click("#comment-form button[type=submit]")
                await page.wait_for_selector("#drawer-comments .comment")
                assert "<b>not bold</b>" in (await page.text_content("#drawer-comments") or "")
                await page.screenshot(path=str(tmp_path / "card-drawer.png"))
                await page.keyboard.press("Escape")
                await page.wait_for_selector("#drawer", state="hidden")
                await other_context.close()

                # Run epic starts the demo run from the board; the cards move to done by themselves.
                await page.click("#run-epic")
                await page.click("#run-start:not([disabled])")  # the Run dialog, with its defaults
                run_link = page.locator("#started-run")
                await run_link.wait_for()
                assert (await run_link.get_attribute("href") or "").startswith("/runs/")
                await page.wait_for_selector("#board-run a[href^='/runs/']")
                await page.wait_for_selector(f"{_column('done')} {_card(ready_id)}", timeout=90 * MS)
                assert await page.locator(f"{_column('done')} .board-card").count() >= 1
                await page.screenshot(path=str(tmp_path / "board-after-run.png"))
            finally:
                await browser.close()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in ("board.png", "card-drawer.png", "board-after-run.png"):
        shutil.copyfile(tmp_path / name, ARTIFACTS / name)
    assert page_errors == [], page_errors
