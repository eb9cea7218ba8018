"""A command's output reaches the run view while the command runs, in headless Chromium against the
real embedded server (daphne, the embedded Celery worker), with a fake model server that plays the
coder and bubblewrap isolating the command.

The coder's first step runs a command that prints a numbered line every 200 ms; the run view, opened
before the run starts, shows the early lines under that call while the command is still running
(before its result exists), then every line once, in order. The model's next step checks that the
whole output also reached it as the observation.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.agents.fake_llm import FakeLLMServer, RecordedRequest, Reply, json_error, openai_stream
from tests.browser.chromium import chromium_or_skip, launch_chromium, log_in_through_page, wait_until
from tests.processes import PYTHON, app_env, login_over_http, started, wait_for_http
from tests.sandboxes.verification_support import require_bwrap
from tests.services import free_port

TICKS = 25
PRINTER = f"import time\nfor n in range({TICKS}):\n    print(f'tick {{n}}', flush=True)\n    time.sleep(0.2)\n"
LINES_JS = "Array.from(document.querySelectorAll('details.command-output .log-line')).map(node => node.textContent)"
_ROLE = re.compile(r"^ORKET-ROLE: (\S+)", re.MULTILINE)
MS = 1000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


class TickingCoder:
    """Step 1: run the printer. Step 2: block the card for a person, noting whether every tick was seen."""

    def __init__(self) -> None:
        self.saw_every_tick: bool | None = None
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Reply:
        if not request.path.endswith("/chat/completions"):
            return json_error(404, "not found")
        with self._lock:
            messages = request.json().get("messages") or []
            role = _ROLE.search(str(messages[0].get("content") or "")) if messages else None
            step = sum(1 for message in messages if message.get("role") == "assistant") + 1
            if role is None or role.group(1) != "coder":
                calls = [("finish_turn", {"summary": "Nothing for me here."})]
            elif step == 1:
                calls = [("run_command", {"argv": ["python3", "-c", PRINTER]})]
            else:
                observation = str(messages[-1].get("content") or "")
                self.saw_every_tick = all(f"tick {n}" in observation for n in range(TICKS))
                blocked = {"status": "blocked", "wait_reason": "input", "reason": "A person should look."}
                calls = [("update_card_status", blocked)]
            text = "\n".join(json.dumps({"tool": name, "args": args}) for name, args in calls)
            answer = f"Next: {calls[0][0]}.\n```json\n{text}\n```"
            usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
            return openai_stream([answer], usage=usage)


@pytest.fixture
def site(tmp_path: Any) -> Iterator[tuple[str, str, httpx.Client]]:
    chromium_or_skip()
    require_bwrap()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    (tmp_path / "data").mkdir()
    env = app_env(
        ORKET_DATA_DIR=str(tmp_path / "data"),
        ORKET_PORT=str(port),
        ORKET_ADMIN_PASSWORD=password,
        ORKET_SANDBOX_BACKEND="local",
    )
    with started([PYTHON, "manage.py", "orket_run"], env, tmp_path / "server.log") as process:
        wait_for_http(f"{base}/accounts/login/", timeout=60, process=process)
        client = login_over_http(base, "admin", password)
        try:
            yield base, password, client
        finally:
            client.close()


def call(client: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    response = client.request(method, path, json=body, headers={"X-CSRFToken": client.cookies["csrftoken"]})
    assert response.status_code in (200, 201), (path, response.status_code, response.text[:300])
    return response.json()


async def test_a_commands_output_shows_in_the_run_view_while_it_runs(site: tuple[str, str, httpx.Client]) -> None:
    from playwright.async_api import async_playwright

    base, password, client = site
    coder = TickingCoder()
    with FakeLLMServer(responder=coder) as model:
        profile = {"name": "ticking-coder", "provider": "openai", "base_url": model.base_url, "model": "ticker"}
        call(client, "POST", "/api/model-profiles/", profile)
        projects = call(client, "GET", "/api/projects/")
        project = next(item for item in projects.get("results", projects) if item["slug"] == "demo")["id"]
        call(client, "PUT", f"/api/projects/{project}/approval-tools/", {"tools": []})
        document = {"name": "Ticks", "team": "standard", "cards": [{"summary": "Tick", "seat": "senior_developer"}]}
        epic = call(client, "POST", f"/api/projects/{project}/import/", document)["id"]
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            try:
                page = await browser.new_page()
                await log_in_through_page(page, base, password)
                run = call(client, "POST", f"/api/epics/{epic}/runs/", {"model_profile": "ticking-coder"})["id"]
                await page.goto(f"{base}/runs/{run}/")
                # Early lines arrive while the command still runs: its result is not on the page yet.
                early = await wait_until(
                    page,
                    f"(() => {{ const lines = {LINES_JS}; return lines.includes('tick 3') && lines; }})()",
                    timeout=60 * MS,
                )
                assert f"tick {TICKS - 1}" not in early, early
                assert await page.locator(".tool-call").count() >= 1
                await wait_until(page, f"{LINES_JS}.length === {TICKS}", timeout=30 * MS)
                assert await page.evaluate(LINES_JS) == [f"tick {n}" for n in range(TICKS)]
                deadline = time.monotonic() + 60
                while call(client, "GET", f"/api/runs/{run}/")["status"] in ("queued", "running"):
                    assert time.monotonic() < deadline, "the run did not end"
                    await asyncio.sleep(0.2)
            finally:
                await browser.close()
    assert coder.saw_every_tick is True
