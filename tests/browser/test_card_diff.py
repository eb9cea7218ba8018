"""The card's changes and files in headless Chromium against the real embedded server: the scripted team
runs the demo epic while the coder's card is open; the card drawer then shows exactly the lines
`git diff` gives for that card, for the whole card and for one turn; the run view folds each write
into its diff; a file holding a script shows as text in the diff and in the file browser and never
runs. Screenshots in var/test-artifacts."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agents.workspaces import git_env
from tests.browser.chromium import chromium_or_skip, launch_chromium, log_in_through_page, wait_until
from tests.processes import PYTHON, REPO, app_env, started, wait_for_http
from tests.services import free_port

ARTIFACT = REPO / "var" / "test-artifacts" / "card-diff.png"
DEMO_PROJECT = 1
DEMO_EPIC = 1
MS = 1000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

START_RUN_JS = """
async (epic) => {
  const token = (document.cookie.match(/(?:^|; )csrftoken=([^;]*)/) || [])[1] || "";
  const response = await fetch(`/api/epics/${epic}/runs/`, {
    method: "POST",
    headers: {"X-CSRFToken": decodeURIComponent(token), "Content-Type": "application/json"},
    body: JSON.stringify({model_profile: "scripted-demo"}),
  });
  return {status: response.status, body: await response.json()};
}
"""
GET_JS = "async (url) => (await fetch(url)).json()"
ROWS_JS = "(nodes) => nodes.map((node) => node.textContent)"
HOSTILE = '<script>window.__xss = 1</script>\n<img src=x onerror="window.__xss = 2">\n'


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=git_env(), check=True, capture_output=True, text=True).stdout


def changed(patch: str) -> tuple[list[str], list[str]]:
    added = [line[1:] for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line[1:] for line in patch.splitlines() if line.startswith("-") and not line.startswith("---")]
    return added, removed


async def shown(page: Any, holder: str) -> tuple[list[str], list[str]]:
    added = await page.eval_on_selector_all(f"{holder} tr.diff-line[data-kind=add] td.diff-code", ROWS_JS)
    removed = await page.eval_on_selector_all(f"{holder} tr.diff-line[data-kind=del] td.diff-code", ROWS_JS)
    return added, removed


@asynccontextmanager
async def signed_in_page(tmp_path: Path) -> AsyncIterator[tuple[Any, str, Path, list[str]]]:
    chromium_or_skip()
    from playwright.async_api import async_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    data = tmp_path / "data"
    data.mkdir()
    env = app_env(ORKET_DATA_DIR=str(data), ORKET_PORT=str(port), ORKET_ADMIN_PASSWORD=password)
    errors: list[str] = []
    with started([PYTHON, "manage.py", "orket_run"], env, tmp_path / "server.log") as server:
        wait_for_http(f"{base}/accounts/login/", timeout=60, process=server)
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 1000})
                context.set_default_timeout(30 * MS)
                page = await context.new_page()
                page.on("pageerror", lambda error: errors.append(str(error)))
                await log_in_through_page(page, base, password)
                yield page, base, data, errors
            finally:
                await browser.close()


async def open_card(page: Any, base: str, project: int, card: int) -> None:
    await page.goto(f"{base}/projects/{project}/board/?epic={DEMO_EPIC}")
    await page.wait_for_selector("#board[data-ready='1']")
    await wait_until(page, "window.orketBoard.state().drawn")
    await page.click(f'.board-card[data-card="{card}"]')
    await page.wait_for_selector(f"#drawer[data-loaded='{card}']")
    await page.wait_for_selector("#card-diff[data-state=loaded]")


async def test_the_drawer_shows_the_lines_the_scripted_coder_changed(tmp_path: Path) -> None:
    async with signed_in_page(tmp_path) as (page, base, data, errors):
        # The coder's card is open in the drawer while the run goes: nothing to show yet, then its
        # changes arrive with the board's live updates.
        project = DEMO_PROJECT
        await page.goto(f"{base}/projects/{project}/board/?epic={DEMO_EPIC}")
        await page.wait_for_selector("#board[data-ready='1']")
        await wait_until(page, "window.orketBoard.state().connected && window.orketBoard.state().drawn")
        watched = page.locator(".board-card:has-text('Implement the greeting formatter')")
        watched_card = int(await watched.get_attribute("data-card") or 0)
        await watched.click()
        await page.wait_for_selector("#card-diff[data-state=loaded]")
        assert await page.text_content("#card-diff .diff-empty") == "No work on this card yet."
        started_run = await page.evaluate(START_RUN_JS, DEMO_EPIC)
        assert started_run["status"] == 201, started_run
        run_id = started_run["body"]["id"]
        assert started_run["body"]["project"] == project
        deadline = time.monotonic() + 150
        while (run := await page.evaluate(GET_JS, f"/api/runs/{run_id}/"))["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, run
            await page.wait_for_timeout(250)
        assert run["status"] == "succeeded", run

        events = (await page.evaluate(GET_JS, f"/api/runs/{run_id}/events/?after=0"))["events"]
        commits = [e for e in events if e["kind"] == "workspace.commit"]
        coder_card = next(e["card"] for e in commits if any(f.startswith("services/") for f in e["files"]))
        repo = data / "workspaces" / f"project-{project}" / "repo"
        branch = f"card/{coder_card}"
        merge = git(repo, "log", "main", "--merges", "--format=%H", f"--grep=merge {branch} into").split()[0]
        expected = changed(git(repo, "diff", f"{merge}^1...{branch}"))
        assert expected[0], "the scripted coder added no lines"
        assert coder_card == watched_card
        deadline = time.monotonic() + 30
        while (rows := await shown(page, "#card-diff")) != expected:
            assert time.monotonic() < deadline, ("the open drawer did not catch up with the run", rows, expected)
            await page.wait_for_timeout(100)

        # The whole card, as git gives it.
        await open_card(page, base, project, coder_card)
        assert await shown(page, "#card-diff") == expected
        paths = await page.eval_on_selector_all(
            "#card-diff section.diff-file", "(nodes) => nodes.map((n) => n.dataset.path)"
        )
        assert paths == git(repo, "diff", "--name-only", f"{merge}^1...{branch}").split()
        assert await page.locator("#card-diff .diff-file .diff-status-added").count() == len(paths)
        summary = await page.text_content("#card-diff .diff-summary") or ""
        assert summary.startswith(f"{len(paths)} files changed, +{len(expected[0])} ")
        assert await page.locator("#card-diff .code-tokens span.k").count() > 0  # highlighted (def, return)
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        await page.locator("#drawer-changes").scroll_into_view_if_needed()
        await page.screenshot(path=str(ARTIFACT.with_name("card-diff-whole.png")))

        # One turn: its commits from the one before its first step to its last.
        turn_commits = [e for e in commits if e["card"] == coder_card]
        last_turn = turn_commits[-1]["turn"]
        mine = [e["sha"] for e in turn_commits if e["turn"] == last_turn]
        await page.select_option("#card-diff-scope", str(last_turn))
        await wait_until(
            page,
            "document.querySelector('#card-diff .diff-summary') && "
            "document.getElementById('card-diff').dataset.state === 'loaded'",
        )
        assert await shown(page, "#card-diff") == changed(git(repo, "diff", f"{mine[0]}^", mine[-1]))

        # The run view: a write's result folds open onto that file's change in its step.
        await page.goto(f"{base}/runs/{run_id}/")
        fold = page.locator(f"#transcript details.call-diff:has-text('Diff of services/card_{coder_card}.py')").last
        await fold.wait_for(timeout=60 * MS)
        await fold.locator("summary").click()
        await fold.locator("table.diff-table").wait_for()
        code_file = git(repo, "diff", f"{mine[0]}^", mine[-1], "--", f"services/card_{coder_card}.py")
        rows = await fold.locator("tr.diff-line[data-kind=add] td.diff-code").evaluate_all(ROWS_JS)
        assert rows == changed(code_file)[0]

        # A file holding a script is shown as text, in the diff and in the file browser, and never runs.
        checkout = data / "workspaces" / f"project-{project}" / "cards" / str(coder_card)
        (checkout / "page.html").write_text(HOSTILE)
        git(checkout, "add", "page.html")
        git(checkout, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "hostile page")
        await open_card(page, base, project, coder_card)
        hostile = page.locator("#card-diff section.diff-file[data-path='page.html']")
        assert (
            await hostile.locator("tr.diff-line[data-kind=add] td.diff-code").evaluate_all(ROWS_JS)
            == HOSTILE.splitlines()
        )
        assert await page.locator("#drawer script, #drawer img").count() == 0
        await page.click("#card-files-section summary")
        await page.click("#card-files button.link-button:text-is('page.html')")
        await page.wait_for_selector("#card-files .file-view")
        lines = await page.eval_on_selector_all("#card-files .file-line td.diff-code", ROWS_JS)
        assert lines == HOSTILE.splitlines()
        await page.click("#card-files .file-crumbs button:text-is('checkout')")
        await page.click("#card-files button.link-button:text-is('services/')")
        await page.wait_for_selector(f"#card-files button.link-button:text-is('card_{coder_card}.py')")
        await page.wait_for_timeout(200)
        assert await page.evaluate("window.__xss") is None

        # A diff too large to show whole says so, and how much was left out.
        for number in range(2):
            (checkout / f"generated{number}.txt").write_text("".join(f"row {n}\n" for n in range(4000)))
        git(checkout, "add", "--all")
        git(checkout, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "generated")
        await open_card(page, base, project, coder_card)
        marker = await page.text_content("#card-diff .diff-view > .diff-truncated") or ""
        assert marker == "The diff is too large to show whole: 1 file with 4000 changed lines not shown.", marker
        assert await page.locator("#card-diff section.diff-file[data-path='generated1.txt'] .diff-truncated").count()
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        await page.locator("#drawer-changes").scroll_into_view_if_needed()
        await page.screenshot(path=str(ARTIFACT))
        assert errors == [], errors
