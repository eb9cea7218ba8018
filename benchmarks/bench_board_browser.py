"""The board page in headless Chromium with 500 and 2,000 cards, against the real embedded server.

For each size (an epic imported through the API, its cards spread over ready, in progress, blocked
and code review by the real services, one dependency chain per ten cards):

- ready_ms: from navigation start until the board has its data and the top of every column is drawn;
- interactive_ms: until, after that, the main thread answers a frame and a task again (from here a
  click or a key is handled while the rest of the cards are still being added);
- drawn_ms: until every card is in the page (after the first draw the rest goes in 10 ms slices);
- click_drawer_ms: inside the page, from a click on a card until the drawer shows that card's data
  (its API answers included);
- long_tasks_ms: the main thread's tasks longer than 50 ms during the load, added up;
- bytes: what the page transferred (headers and bodies, HTML, scripts, styles and API answers),
  with the number of requests; each run uses a fresh browser context, so nothing comes from a cache.

The server side: the SQL queries of GET /api/epics/{id}/board/, GET /api/projects/{id}/board/ and the
board page itself at both sizes; the script fails if any of them grows with the number of cards.

Debian's /usr/bin/chromium through Playwright, with the flags of tests/browser/chromium.py.
Usage, from the repository root: .venv/bin/python benchmarks/bench_board_browser.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from benchmarks.large_epic import large_epic_document  # noqa: E402
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.processes import PYTHON, app_env, run_manage, started, wait_for_http  # noqa: E402
from tests.services import free_port  # noqa: E402

SIZES = (500, 2_000)
PASSWORD = "benchmark password 42"
# This benchmark's own card titles, longer than bench_board's; kept so its figures stay comparable.
CARD_SUMMARY = "Card {number}: make the thing number {number} work"

SPREAD_CODE = """
from boards import services
from boards.actors import Actor
from boards.models import Card
actor = Actor.for_seat("coder", ["coder"])
for index, card in enumerate(Card.objects.filter(epic_id={epic}).order_by("rank", "id")):
    kind = index % 20
    if kind < 8:
        continue  # 40 % stay ready
    services.card_transition(card=card, to_status="in_progress", actor=actor)
    if kind < 13:
        continue  # 25 % in progress
    if kind < 16:
        services.card_transition(card=card, to_status="blocked", actor=actor, wait_reason="dependency")
        continue  # 15 % blocked
    services.card_transition(card=card, to_status="code_review", actor=actor)  # 20 % in code review
"""

QUERIES_CODE = """
import json
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

user = get_user_model().objects.get(username="admin")
api = APIClient(HTTP_HOST="localhost")
api.force_authenticate(user)
page = Client(HTTP_HOST="localhost")
page.force_login(user)
counts = {{}}
for epic in {epics}:
    for name, client, url in (
        ("epic_board", api, f"/api/epics/{{epic}}/board/"),
        ("project_board", api, "/api/projects/{project}/board/"),
        ("board_page", page, f"/projects/{project}/board/?epic={{epic}}"),
    ):
        client.get(url)  # warm-up
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        counts.setdefault(name, []).append(len(queries))
print("QUERIES " + json.dumps(counts))
"""

INIT_JS = """
window.__longTasks = 0;
document.addEventListener("click", () => { window.__clickAt = performance.now(); }, true);
new MutationObserver(() => {
  const drawer = document.getElementById("drawer");
  if (drawer && drawer.dataset.loaded && window.__clickAt && !window.__drawerAt) {
    window.__drawerAt = performance.now();
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-loaded"]});
try {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) { window.__longTasks += entry.duration; }
  }).observe({type: "longtask", buffered: true});
} catch (error) {}
"""

MEASURE_JS = """
async () => {
  const until = (check) => new Promise((resolve) => {
    const step = () => (check() ? resolve(performance.now()) : requestAnimationFrame(step));
    step();
  });
  const ready = await until(() => document.querySelector("#board[data-ready='1']") !== null);
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  const interactive = performance.now();
  const drawn = await until(() => window.orketBoard && window.orketBoard.state().drawn);
  return {ready, drawn, interactive, cards: document.querySelectorAll("#board .board-card").length};
}
"""


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def prepare(base: str, env: dict[str, str]) -> tuple[int, dict[int, int], httpx.Client]:
    token = httpx.post(f"{base}/api/auth/token/", json={"username": "admin", "password": PASSWORD}).json()["token"]
    client = httpx.Client(base_url=base, headers={"Authorization": f"Token {token}"}, timeout=120)
    project = client.post("/api/projects/", json={"name": "Board benchmark"}).json()["id"]
    epics: dict[int, int] = {}
    for size in SIZES:
        began = time.perf_counter()
        response = client.post(f"/api/projects/{project}/import/", json=large_epic_document(size, CARD_SUMMARY))
        response.raise_for_status()
        epic = response.json()["id"]
        result = run_manage(env, "shell", "-c", SPREAD_CODE.replace("{epic}", str(epic)), timeout=600)
        if result.returncode != 0:
            raise SystemExit(f"spreading the cards failed: {result.stderr[-2000:]}")
        epics[size] = epic
        say(f"setup cards={size} epic={epic} seconds={time.perf_counter() - began:.1f}")
    return project, epics, client


def server_queries(env: dict[str, str], project: int, epics: dict[int, int]) -> dict[str, list[int]]:
    code = QUERIES_CODE.format(project=project, epics=[epics[size] for size in SIZES])
    result = run_manage(env, "shell", "-c", code, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"counting queries failed: {result.stderr[-2000:]}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("QUERIES "))
    return json.loads(line.removeprefix("QUERIES "))


async def browse(base: str, project: int, epics: dict[int, int], runs: int) -> dict[int, list[dict[str, float]]]:
    from playwright.async_api import async_playwright

    session = httpx.Client(base_url=base)
    session.get("/accounts/login/")
    session.post(
        "/accounts/login/",
        data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
    )
    cookies = [
        {"name": name, "value": value, "url": base} for name, value in session.cookies.items() if name == "sessionid"
    ]
    results: dict[int, list[dict[str, float]]] = {size: [] for size in SIZES}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for run in range(runs + 1):  # the first round warms the server and the browser up
                for size in SIZES:
                    context = await browser.new_context(viewport={"width": 1280, "height": 800})
                    await context.add_cookies(cookies)
                    await context.add_init_script(INIT_JS)
                    page = await context.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
                    finished: list[Any] = []
                    page.on("requestfinished", lambda request, finished=finished: finished.append(request))
                    await page.goto(f"{base}/projects/{project}/board/?epic={epics[size]}", wait_until="commit")
                    timing = await page.evaluate(MEASURE_JS)
                    if timing["cards"] != size:
                        raise SystemExit(f"the board drew {timing['cards']} cards, not {size}")
                    long_tasks = await page.evaluate("window.__longTasks")
                    await page.click("#board .board-card .card-title")
                    await page.wait_for_selector("#drawer[data-loaded]")
                    click_ms = await page.evaluate("window.__drawerAt - window.__clickAt")
                    total = 0
                    for request in list(finished):
                        sizes = await request.sizes()
                        total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
                        total += sizes["requestBodySize"] + sizes["requestHeadersSize"]
                    await context.close()
                    if errors:
                        raise SystemExit(f"page errors: {errors}")
                    if run:
                        results[size].append(
                            {
                                "ready_ms": timing["ready"],
                                "drawn_ms": timing["drawn"],
                                "interactive_ms": timing["interactive"],
                                "click_drawer_ms": click_ms,
                                "long_tasks_ms": long_tasks,
                                "bytes": total,
                                "requests": len(finished),
                            }
                        )
        finally:
            await browser.close()
    session.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    if not CHROMIUM.exists():
        say(f"bench_board_browser skipped: {CHROMIUM} is missing (apt-get install chromium)")
        return 0
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="orket-bench-browser-") as workdir:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = app_env(
            ORKET_DATA_DIR=str(Path(workdir) / "data"),
            ORKET_PORT=str(port),
            ORKET_ADMIN_PASSWORD=PASSWORD,
            ORKET_LOG_LEVEL="WARNING",
        )
        with started([PYTHON, "manage.py", "orket_run"], env, Path(workdir) / "server.log") as server:
            wait_for_http(f"{base}/readyz", process=server, timeout=60)
            project, epics, client = prepare(base, env)
            client.close()
            counts = server_queries(env, project, epics)
            constant = all(len(set(values)) == 1 for values in counts.values())
            for name, values in counts.items():
                figures = " ".join(f"at_{size}={value}" for size, value in zip(SIZES, values, strict=True))
                say(f"queries {name} {figures}")
            results = asyncio.run(browse(base, project, epics, options.runs))
    for size in SIZES:
        rows = results[size]

        def median(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(row[key] for row in rows)

        say(
            f"board_browser cards={size} ready_ms={median('ready_ms'):.0f} drawn_ms={median('drawn_ms'):.0f} "
            f"interactive_ms={median('interactive_ms'):.0f} click_drawer_ms={median('click_drawer_ms'):.0f} "
            f"long_tasks_ms={median('long_tasks_ms'):.0f} bytes={median('bytes'):.0f} "
            f"requests={median('requests'):.0f} runs={len(rows)}"
        )
    say(f"bench_board_browser total_seconds={time.monotonic() - began:.1f}")
    if not constant:
        say(f"bench_board_browser FAILED: the query count grows with the cards: {counts}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
