"""The board's finer parts in headless Chromium against the real embedded server: order within a
column that survives a reload and shows live on another board, the drawer's dependencies (with a
cycle refused and named), turns, prompt preview and safely rendered Markdown, swimlanes by epic kept
in the URL, pull request and review-cycle badges, and a narrow window. Screenshots go to
var/test-artifacts."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.browser.chromium import chromium_or_skip, launch_chromium, log_in_through_page, wait_until
from tests.browser.settle import RequestsInFlight
from tests.processes import PYTHON, REPO, app_env, login_over_http, run_manage, started, wait_for_http
from tests.services import free_port

ARTIFACTS = REPO / "var" / "test-artifacts"
MS = 1000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

HOSTILE_DESCRIPTION = """## Plan
Do **this** first, then *that*; see [the guide](https://example.org/guide).

<script>window.__xss = 1</script>
<img src=x onerror="window.__xss = 2">
[click me](javascript:window.__xss=3)
<a href="javascript:window.__xss=4" onclick="window.__xss=5">raw link</a>

- one
- two
"""

HOSTILE_HTML = (
    '<p onclick="x()">a<script>window.__xss=6</script><img src=x onerror="window.__xss=7">'
    '<a href="javascript:window.__xss=8" onmouseover="x()">j</a><a href="https://example.org/">k</a>'
    '<iframe src="/"></iframe><ol start="3"><li>l</li></ol></p>'
)


@dataclass
class Server:
    base: str
    password: str
    env: dict[str, str]
    api: httpx.Client
    project: int
    demo_epic: int

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.api.post(path, json=body, headers={"X-CSRFToken": self.api.cookies["csrftoken"]})
        assert response.status_code in (200, 201), (path, response.status_code, response.text[:300])
        return response.json()

    def get(self, path: str) -> Any:
        response = self.api.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return response.json()

    def epic_with_cards(self, name: str, titles: list[str]) -> tuple[int, list[int]]:
        epic = self.post("/api/epics/", {"project": self.project, "name": name})
        cards = [self.post("/api/cards/", {"epic": epic["id"], "title": title})["id"] for title in titles]
        return epic["id"], cards

    def board_url(self, epic: int, extra: str = "") -> str:
        return f"{self.base}/projects/{self.project}/board/?epic={epic}{extra}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    chromium_or_skip()
    tmp_path = tmp_path_factory.mktemp("board-details")
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
            yield Server(base, password, env, client, project["id"], epics[0]["id"])
        finally:
            client.close()


async def _open_board(page: Any, url: str) -> None:
    await page.goto(url)
    await page.wait_for_selector("#board[data-ready='1']")
    await wait_until(page, "window.orketBoard.state().connected && window.orketBoard.state().drawn")


def _card(card_id: int) -> str:
    return f'.board-card[data-card="{card_id}"]'


async def _menu(page: Any, card_id: int, choice: str) -> None:
    """Choose an entry of a card's move menu (a status, or order:up/down/top/bottom)."""
    await page.click(f"{_card(card_id)} .move-button")
    await page.click(f'#move-popup [role=menuitem][data-value="{choice}"]')


def _column(status: str) -> str:
    return f'#board .column[data-status="{status}"]'


ORDER_JS = "nodes => nodes.map(node => Number(node.dataset.card))"


async def _order(page: Any, status: str) -> list[int]:
    return await page.eval_on_selector_all(f"{_column(status)} .board-card", ORDER_JS)


async def _wait_order(page: Any, status: str, expected: list[int], timeout: float = 5.0) -> float:
    began = time.monotonic()
    while True:
        if await _order(page, status) == expected:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{status} column is {await _order(page, status)}, expected {expected}")
        await page.wait_for_timeout(50)


@dataclass
class SignedInBoards:
    """One Chromium for a test; each board it opens has its own context (so its own session), signed in
    as the admin through the login form. Script errors and dialogs of every page are collected."""

    browser: Any
    server: Server
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    async def open(self, epic: int) -> Any:
        context = await self.browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(20 * MS)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", self._record_and_dismiss)
        await log_in_through_page(page, self.server.base, self.server.password)
        await _open_board(page, self.server.board_url(epic))
        return page

    async def _record_and_dismiss(self, dialog: Any) -> None:
        # Dismissed as Playwright does when nobody listens, so a dialog cannot freeze the page.
        self.dialogs.append(dialog.message)
        await dialog.dismiss()


@asynccontextmanager
async def signed_in_boards(server: Server) -> AsyncIterator[SignedInBoards]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            yield SignedInBoards(browser, server)
        finally:
            await browser.close()


def _server_order(server: Server, epic: int, status: str) -> list[int]:
    cards = server.get(f"/api/epics/{epic}/board/")["cards"]
    return [card["id"] for card in sorted(cards, key=lambda c: (c["rank"], c["id"])) if card["status"] == status]


async def test_order_within_a_column_persists_and_shows_live(server: Server) -> None:
    epic, (a, b, c, d) = server.epic_with_cards("Ordering", ["Alpha", "Bravo", "Charlie", "Delta"])
    async with signed_in_boards(server) as boards:
        page = await boards.open(epic)
        other = await boards.open(epic)
        assert await _order(page, "ready") == [a, b, c, d]

        # Drag Delta onto the top half of Alpha: it lands first, here, on the server and on the other board.
        await page.drag_and_drop(_card(d), _card(a), target_position={"x": 30, "y": 6})
        await wait_until(page, "window.orketBoard.state().reorders >= 1")
        await _wait_order(page, "ready", [d, a, b, c])
        assert _server_order(server, epic, "ready") == [d, a, b, c]
        live = await _wait_order(other, "ready", [d, a, b, c], timeout=3.0)
        assert live < 2.0, live

        # Drag Alpha below Charlie (bottom half).
        box = await page.locator(_card(c)).bounding_box()
        assert box is not None
        await page.drag_and_drop(_card(a), _card(c), target_position={"x": 30, "y": box["height"] - 6})
        await wait_until(page, "window.orketBoard.state().reorders >= 2")
        await _wait_order(page, "ready", [d, b, c, a])

        # The keyboard: Shift+Up on Charlie; then the move menu by keyboard (m, End, Enter): Delta to the bottom.
        await page.focus(_card(c))
        await page.keyboard.press("Shift+ArrowUp")
        await wait_until(page, "window.orketBoard.state().reorders >= 3")
        await _wait_order(page, "ready", [d, c, b, a])
        await page.focus(_card(d))
        await page.keyboard.press("m")
        await page.wait_for_selector("#move-popup:not([hidden])")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "board-move-menu.png"))
        await page.keyboard.press("End")
        assert await page.evaluate("document.activeElement.dataset.value") == "order:bottom"
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#move-popup", state="hidden")
        await wait_until(page, "window.orketBoard.state().reorders >= 4")
        await _wait_order(page, "ready", [c, b, a, d])
        await _wait_order(other, "ready", [c, b, a, d], timeout=3.0)

        # A drop into another column at a position: the move, then the place.
        await _menu(page, b, "in_progress")
        await page.wait_for_selector(f"{_column('in_progress')} {_card(b)}")
        await wait_until(page, "window.orketBoard.state().moves >= 1 && window.orketBoard.state().idle")
        await page.drag_and_drop(_card(a), _card(b), target_position={"x": 30, "y": 6})
        await wait_until(page, "window.orketBoard.state().reorders >= 5")
        await _wait_order(page, "in_progress", [a, b])
        assert _server_order(server, epic, "in_progress") == [a, b]

        # All of it survives a reload.
        await page.reload()
        await page.wait_for_selector("#board[data-ready='1']")
        await _wait_order(page, "ready", [c, d])
        await _wait_order(page, "in_progress", [a, b])
        history = server.get(f"/api/cards/{d}/history/")["results"]
        assert any(row["reason"] == f"placed before #{a}" for row in history), history
    assert boards.errors == [], boards.errors


async def test_drawer_dependencies_markdown_turns_and_prompt(server: Server) -> None:
    epic, (first, second, _third) = server.epic_with_cards("Drawer", ["Schema", "Endpoint", "Screen"])
    server.api.patch(
        f"/api/cards/{first}/",
        json={"description": HOSTILE_DESCRIPTION},
        headers={"X-CSRFToken": server.api.cookies["csrftoken"]},
    ).raise_for_status()
    async with signed_in_boards(server) as boards:
        page = await boards.open(epic)
        requests = RequestsInFlight(page)

        # Markdown is rendered; the script, the handlers and the javascript: links are not.
        await page.click(_card(first))
        await page.wait_for_selector(f"#drawer[data-loaded='{first}']")
        view = page.locator("#d-description-view")
        assert await view.locator("h4").text_content() == "Plan"
        assert await view.locator("strong").first.text_content() == "this"
        assert await view.locator("li").count() == 2
        assert await view.locator("script, img, iframe").count() == 0
        hrefs = await view.locator("a").evaluate_all("nodes => nodes.map(node => node.getAttribute('href'))")
        assert hrefs == ["https://example.org/guide"], hrefs
        handlers = await view.evaluate(
            "root => Array.from(root.querySelectorAll('*')).flatMap(node => "
            "Array.from(node.attributes).map(attr => attr.name)).filter(name => name.startsWith('on'))"
        )
        assert handlers == []
        text = await view.text_content() or ""
        assert "<script>window.__xss = 1</script>" in text and "raw link" in text
        await requests.quiet()  # an image's error handler, had one got through, has had its turn
        assert await page.evaluate("window.__xss") is None
        # Even hostile HTML from the server would be copied through the page's allowlist.
        copied = await page.evaluate("html => window.orketBoard.safeMarkup(html)", HOSTILE_HTML)
        assert "<script" not in copied and "<img" not in copied and "<iframe" not in copied, copied
        assert "onclick" not in copied and "onmouseover" not in copied and "javascript:" not in copied, copied
        assert '<a href="https://example.org/" rel="nofollow noopener noreferrer">k</a>' in copied, copied
        assert '<ol start="3"><li>l</li></ol>' in copied, copied
        await requests.quiet()  # an image's error handler, had one got through, has had its turn
        assert await page.evaluate("window.__xss") is None

        # Dependencies: Schema waits on Endpoint; Endpoint waiting on Schema is refused, naming the cycle.
        await page.fill("#dep-input", f"#{second}")
        await page.click("#dep-add")
        await page.wait_for_selector(f"#drawer-deps [data-dep='{second}']")
        await page.wait_for_selector(f"{_card(first)} [data-flag=dependency]")
        await page.click(f"#drawer-deps [data-open='{second}']")
        await page.wait_for_selector(f"#drawer[data-loaded='{second}']")
        await page.wait_for_selector("#drawer-dependents:has-text('Schema')")
        await page.fill("#dep-input", f"#{first} Schema")
        await page.click("#dep-add")
        refusal = page.locator("#dep-error")
        await refusal.wait_for()
        await wait_until(page, "document.getElementById('dep-error').textContent.includes('cycle')")
        said = await refusal.text_content() or ""
        assert f"#{first}" in said and f"#{second}" in said and "'Schema'" in said, said
        assert await page.locator("#drawer-deps [data-dep]").count() == 0
        # Back to Schema and remove its dependency.
        await page.click(_card(first))
        await page.wait_for_selector(f"#drawer[data-loaded='{first}']")
        await page.click(f"#drawer-deps [data-remove='{second}']")
        await page.wait_for_selector("#drawer-deps li:has-text('No dependencies')")
        assert server.get(f"/api/cards/{first}/")["depends_on"] == []
        history = page.locator("#drawer-history")
        await history.locator("text=no longer waits on").wait_for()
        assert await page.locator(f"{_card(first)} [data-flag=dependency]").count() == 0

        # The prompt preview for a chosen role.
        await wait_until(page, "document.querySelectorAll('#prompt-role option').length > 1")
        await page.select_option("#prompt-role", index=1)
        await page.click("#prompt-show")
        await page.wait_for_selector("#prompt-view .prompt-message[open] pre")
        assert "Seat" in (await page.text_content("#prompt-view .prompt-who") or "")

        # A card of the demo epic: run it from the drawer and follow the turn into the run view.
        await _open_board(page, server.board_url(server.demo_epic))
        demo_card = int(await page.locator(f"{_column('ready')} .board-card").first.get_attribute("data-card") or 0)
        await page.click(_card(demo_card))
        await page.wait_for_selector(f"#drawer[data-loaded='{demo_card}']")
        await page.click("#drawer-run")
        await page.wait_for_selector("#drawer-run-link a[href^='/runs/']")
        turn_link = page.locator("#drawer-turns a[href^='/runs/']").first
        await turn_link.wait_for(timeout=60 * MS)
        run_href = await turn_link.get_attribute("href") or ""
        assert run_href == await page.get_attribute("#drawer-run-link a", "href")
        turn_row = await page.locator("#drawer-turns li.turn-row").first.text_content() or ""
        assert re.search(r"\bfor (work|review)\b", turn_row) and re.search(r"\(\d+ steps?[;)]", turn_row), turn_row
        await page.evaluate("document.getElementById('deps-title').scrollIntoView()")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "card-drawer-details.png"))
        async with page.expect_navigation():
            await turn_link.click()
        assert page.url.endswith(run_href)
    assert boards.errors == [] and boards.dialogs == [], (boards.errors, boards.dialogs)


async def test_swimlanes_survive_a_reload_and_badges_show_review_state(server: Server) -> None:
    epic, (card, plain) = server.epic_with_cards("Lanes", ["Reviewed card", "Plain card"])
    code = (
        "from boards import services; from boards.actors import Actor; from boards.models import Card; "
        f"services.card_review_record(card=Card.objects.get(pk={card}), actor=Actor.orket('test'), "
        "pull_request={'number': 7, 'url': 'https://git.example/orket/pulls/7', 'state': 'open'}, review_cycle=2)"
    )
    result = run_manage(server.env, "shell", "-c", code)
    assert result.returncode == 0, result.stderr[-2000:]
    limits = server.api.patch(
        f"/api/projects/{server.project}/settings/",
        json={"wip_limits": {"ready": 1}},
        headers={"X-CSRFToken": server.api.cookies["csrftoken"]},
    )
    assert limits.status_code == 200, limits.text
    async with signed_in_boards(server) as boards:
        page = await boards.open(epic)

        pr = page.locator(f"{_card(card)} [data-flag=pull-request]")
        assert await pr.get_attribute("href") == "https://git.example/orket/pulls/7"
        assert "PR #7" in (await pr.text_content() or "")
        assert "review cycle 2" in (await page.text_content(f"{_card(card)} [data-flag=review-cycle]") or "")
        assert await page.locator(f"{_card(plain)} [data-flag=pull-request]").count() == 0
        assert await page.locator(f"{_card(plain)} [data-flag=review-cycle]").count() == 0

        # The WIP limit of ready (1) is exceeded by this epic's two ready cards.
        ready_column = page.locator(f"{_column('ready')}.over-limit")
        assert (await ready_column.locator("[data-field=wip]").text_content() or "").strip() == "2 / 1"
        assert await ready_column.locator(".wip-warning").is_visible()

        # Canceled is folded by default; the choice is kept in the URL like the lanes.
        assert await page.locator(f"{_column('canceled')}.folded").count() == 1
        await page.check("#lanes-toggle")
        await page.wait_for_selector(f"#board.lanes .lane[data-epic='{server.demo_epic}']")
        await wait_until(page, "location.search.includes('lanes=epic')")
        lanes = await page.eval_on_selector_all("#board .lane", "nodes => nodes.map(n => Number(n.dataset.epic))")
        assert server.demo_epic in lanes and epic in lanes
        assert await page.locator(f".lane[data-epic='{epic}'] {_card(card)}").count() == 1
        await page.check("#show-canceled")
        await wait_until(page, "location.search.includes('canceled=1')")
        await page.reload()
        await page.wait_for_selector("#board[data-ready='1']")
        assert await page.is_checked("#lanes-toggle") and await page.is_checked("#show-canceled")
        await page.wait_for_selector(f"#board.lanes .lane[data-epic='{epic}'] {_card(plain)}")
        assert await page.locator("#board .lane-heads .folded").count() == 0
        # With lanes the header row counts the whole project against the limit.
        assert await page.locator(".lane-heads [data-status=ready].over-limit .wip-warning").is_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "board-lanes.png"))

        # A live change reaches a lane.
        server.post(f"/api/cards/{plain}/transition/", {"status": "in_progress"})
        await page.wait_for_selector(
            f".lane[data-epic='{epic}'] .column[data-status='in_progress'] {_card(plain)}", timeout=3 * MS
        )
        # Turning lanes off again shows the one epic.
        await page.uncheck("#lanes-toggle")
        await wait_until(page, "!location.search.includes('lanes=epic')")
        await page.wait_for_selector("#board:not(.lanes) .column[data-status='in_progress'] .board-card")

        # A narrow window: the board scrolls sideways, the drawer takes the whole width.
        await page.set_viewport_size({"width": 390, "height": 800})
        await page.click(_card(plain))
        await page.wait_for_selector(f"#drawer[data-loaded='{plain}']")
        drawer_box = await page.locator("#drawer").bounding_box()
        assert drawer_box is not None and drawer_box["width"] <= 390
        await page.screenshot(path=str(ARTIFACTS / "board-narrow-drawer.png"))
        await page.keyboard.press("Escape")
        await page.screenshot(path=str(ARTIFACTS / "board-narrow.png"))
    assert boards.errors == [], boards.errors
