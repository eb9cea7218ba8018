"""The run view in headless Chromium against the real embedded server: the demo epic runs while the
page is open, the WebSocket is cut in the middle, and afterwards the page equals the stored events
line for line. A screenshot of the finished run view is kept as a test artifact."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import chromium_or_skip, launch_chromium, log_in_through_page, wait_until
from tests.processes import PYTHON, REPO, app_env, started, wait_for_http
from tests.services import free_port

ARTIFACT = REPO / "var" / "test-artifacts" / "run-view.png"
DEMO_EPIC = 1
MS = 1000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

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

STORED_EVENTS_JS = """
async (run) => {
  let after = 0, events = [], last = 0;
  for (let page = 0; page < 100; page++) {
    const data = await (await fetch(`/api/runs/${run}/events/?after=${after}&limit=1000`)).json();
    last = data.last_seq;
    events = events.concat(data.events);
    if (!data.events.length || events[events.length - 1].seq >= last) break;
    after = events[events.length - 1].seq;
  }
  const stored = await (await fetch(`/api/runs/${run}/`)).json();
  return {last_seq: last, events, run: stored};
}
"""

EXPORT_JS = """
async (run) => {
  const response = await fetch(`/api/runs/${run}/export/`);
  return {status: response.status, text: await response.text()};
}
"""

HOSTILE_TEXT = '<img src=x onerror="window.__xss=true"> <b>not bold</b> & done'
HOSTILE_EVENTS: list[dict[str, Any]] = [
    {"kind": "run.status", "turn": None, "card": None, "status": "running", "reason": "started"},
    {"kind": "turn.queued", "turn": 7, "card": 1, "seat": "coder", "role": "coder"},
    {"kind": "turn.started", "turn": 7, "card": 1, "seat": "coder", "role": "coder", "model": "m", "attempt": 1},
    {"kind": "text", "turn": 7, "card": 1, "text": HOSTILE_TEXT},
    {"kind": "tool.call", "turn": 7, "card": 1, "name": "write_file", "arguments": {"path": "../etc/passwd"}},
    {
        "kind": "tool.refused",
        "turn": 7,
        "card": 1,
        "name": "write_file",
        "rule": "path_policy",
        "message": "The path is outside the workspace.",
        "fix": "Write inside the workspace.",
    },
    {"kind": "tool.error", "turn": 7, "card": 1, "name": "run_tests", "rule": "tool_failed", "message": "disk full"},
    {
        "kind": "card.blocked",
        "turn": None,
        "card": 1,
        "wait_reason": "governance",
        "report": "Attempted write_file; refused by rule path_policy. What would fix it: write inside the workspace.",
    },
    {"kind": "turn.failed", "turn": 7, "card": 1, "outcome": "refused"},
    {"kind": "run.status", "turn": None, "card": None, "status": "failed", "reason": "token budget spent"},
]

HOSTILE_CHECK_JS = """
() => ({
  xss: window.__xss === true,
  images: document.querySelectorAll("#transcript img").length,
  text: document.querySelector("#transcript .chunk[data-kind=text]").textContent,
  refused: document.querySelector("#transcript .line.refused").textContent,
  error: document.querySelector("#transcript .line.error").textContent,
  blocked: document.querySelector("#transcript .line.blocked").textContent,
  status: document.querySelector("[data-field=status]").textContent,
  detail: document.querySelector("[data-field=status_detail]").textContent,
  refusals: window.orketRun.renderer.refusals.length,
})
"""


def hostile_export() -> str:
    """An export file with refusals, errors, a blocked card and model text that looks like HTML."""
    lines = [{"type": "run", "run": {"id": 999, "epic": {"name": "Hostile"}, "token_budget": 1000}}]
    lines.append({"type": "turn", "turn": {"id": 7, "seat": "coder", "model": "m", "tokens_in": 10, "tokens_out": 5}})
    for seq, event in enumerate(HOSTILE_EVENTS, start=1):
        at = f"2026-01-01T00:00:{seq:02d}+00:00"
        lines.append({"type": "event", "event": {"seq": seq, "at": at, **event}})
    return "\n".join(json.dumps(line) for line in lines) + "\n"


PAGE_TRANSCRIPT_JS = """
() => ({
  log: Array.from(document.querySelectorAll("#frame-log li")).map(
    (li) => [Number(li.dataset.seq), li.dataset.kind, li.textContent]),
  shown: Array.from(document.querySelectorAll("#run-lines [data-seq], #transcript [data-seq]")).map(
    (node) => [Number(node.dataset.seq), node.dataset.kind, node.textContent]),
})
"""


@asynccontextmanager
async def signed_in_page(
    tmp_path: Path, *, tokens_per_second: str, height: int
) -> AsyncIterator[tuple[Any, str, list[str]]]:
    """The embedded server with the scripted model at the given speed, and a Chromium page signed in as
    the admin through the login form; yields the page, the base URL and the page's script errors."""
    chromium_or_skip()
    from playwright.async_api import async_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    env = app_env(
        ORKET_DATA_DIR=str(tmp_path / "data"),
        ORKET_PORT=str(port),
        ORKET_ADMIN_PASSWORD=password,
        ORKET_SCRIPTED_TOKENS_PER_SECOND=tokens_per_second,
    )
    (tmp_path / "data").mkdir()
    page_errors: list[str] = []
    with started([PYTHON, "manage.py", "orket_run"], env, tmp_path / "server.log") as server:
        wait_for_http(f"{base}/accounts/login/", timeout=60, process=server)
        async with async_playwright() as playwright:
            browser = await launch_chromium(playwright)
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": height})
                context.set_default_timeout(30 * MS)
                page = await context.new_page()
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                await log_in_through_page(page, base, password)
                yield page, base, page_errors
            finally:
                await browser.close()


async def test_run_view_streams_the_demo_run_survives_a_dropped_socket_and_equals_the_record(tmp_path: Path) -> None:
    async with signed_in_page(tmp_path, tokens_per_second="60", height=900) as (page, base, page_errors):
        started_run = await page.evaluate(START_RUN_JS, DEMO_EPIC)
        assert started_run["status"] == 201, started_run
        run_id = started_run["body"]["id"]

        await page.goto(f"{base}/runs/{run_id}/")
        assert await page.text_content("[data-field=model]") == "scripted"

        # Model text streams in, and a tool call shows up, while the run is still going.
        await page.wait_for_selector("#transcript .chunk[data-kind=text]", timeout=30 * MS)
        await page.wait_for_selector("#transcript [data-kind='tool.call']", timeout=45 * MS)
        before: dict[str, Any] = await page.evaluate("window.orketRun.state()")
        assert before["connected"] and not before["final"], f"the run ended too soon to test a drop: {before}"

        # Cut the socket as a network drop would; the page must reconnect by itself.
        assert await page.evaluate("window.orketRun.dropConnection()") is True
        await wait_until(page, "window.orketRun.state().reconnects >= 1", timeout=10 * MS)
        await wait_until(page, "window.orketRun.state().connected", timeout=20 * MS)
        after_drop = await page.evaluate("window.orketRun.state()")
        assert after_drop["lastSeq"] >= before["lastSeq"]

        await wait_until(page, "window.orketRun.state().done", timeout=90 * MS)
        stored = await page.evaluate(STORED_EVENTS_JS, run_id)
        run = stored["run"]
        assert run["status"] == "succeeded", run
        await wait_until(
            page, "document.querySelector('[data-field=status]').textContent === 'succeeded'", timeout=10 * MS
        )
        await wait_until(page, "window.orketRun.charts.turnRecords.size > 0", timeout=10 * MS)
        await wait_until(page, CHARTS_DRAWN_JS, timeout=10 * MS)  # the throttled redraw after the last turn

        transcript = await page.evaluate(PAGE_TRANSCRIPT_JS)
        await page.screenshot(path=str(tmp_path / "run-view.png"))
        await page.screenshot(path=str(tmp_path / "run-view-full.png"), full_page=True)

        # The replay view plays the stored run, then an export file, through the same renderer.
        last_seq = stored["last_seq"]
        await page.goto(f"{base}/runs/{run_id}/replay/")
        await wait_until(page, "window.orketRun.state().total > 0", timeout=15 * MS)
        await page.select_option("#replay-speed", "0")
        await page.click("#replay-play")
        await wait_until(page, f"window.orketRun.state().lastSeq === {last_seq}", timeout=20 * MS)
        replayed_stored = await page.evaluate(PAGE_TRANSCRIPT_JS)

        export = await page.evaluate(EXPORT_JS, run_id)
        assert export["status"] == 200, export
        export_path = tmp_path / f"run-{run_id}.jsonl"
        export_path.write_text(export["text"])
        await page.set_input_files("#replay-file", str(export_path))
        await wait_until(
            page, "window.orketRun.state().lastSeq === 0 && window.orketRun.state().total > 0", timeout=15 * MS
        )
        await page.click("#replay-play")
        await wait_until(page, f"window.orketRun.state().lastSeq === {last_seq}", timeout=20 * MS)
        replayed_file = await page.evaluate(PAGE_TRANSCRIPT_JS)

        # Refusals, errors and blocked cards stand out, and model text is never taken as HTML.
        hostile_path = tmp_path / "hostile.jsonl"
        hostile_path.write_text(hostile_export())
        await page.set_input_files("#replay-file", str(hostile_path))
        await wait_until(page, "window.orketRun.state().lastSeq === 0", timeout=15 * MS)
        await page.click("#replay-play")
        await wait_until(page, f"window.orketRun.state().lastSeq === {len(HOSTILE_EVENTS)}", timeout=20 * MS)
        hostile = await page.evaluate(HOSTILE_CHECK_JS)
        await page.screenshot(path=str(tmp_path / "run-view-refusals.png"), full_page=True)

    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "run-view.png", ARTIFACT)
    shutil.copyfile(tmp_path / "run-view-full.png", ARTIFACT.with_name("run-view-full.png"))
    shutil.copyfile(tmp_path / "run-view-refusals.png", ARTIFACT.with_name("run-view-refusals.png"))

    events = stored["events"]
    last_seq = stored["last_seq"]
    assert last_seq == run["last_seq"] and last_seq > 20
    assert [event["seq"] for event in events] == list(range(1, last_seq + 1))

    # The hidden log: every stored event exactly once, in order, with the same kind and text.
    log = transcript["log"]
    assert [seq for seq, _, _ in log] == list(range(1, last_seq + 1))
    assert [kind for _, kind, _ in log] == [event["kind"] for event in events]
    for (seq, kind, text), event in zip(log, events, strict=True):
        if kind in ("text", "reasoning"):
            assert text == event["text"], f"text of event {seq} differs"

    # The visible transcript: one element per event, text chunks equal to the stored text.
    shown = {seq: (kind, text) for seq, kind, text in transcript["shown"]}
    assert len(transcript["shown"]) == last_seq, "an event is shown twice or not at all"
    assert sorted(shown) == list(range(1, last_seq + 1))
    for event in events:
        kind, text = shown[event["seq"]]
        assert kind == event["kind"]
        if kind == "text":
            assert text == event["text"]
        if kind == "tool.call":
            assert event["name"] in text
    assert any(event["kind"] == "tool.call" for event in events)

    # Replays render the very same lines as the live view did.
    assert replayed_stored["log"] == log
    assert replayed_file["log"] == log
    assert len(replayed_file["shown"]) == last_seq

    assert hostile["xss"] is False and hostile["images"] == 0
    assert hostile["text"] == HOSTILE_TEXT
    for needle in ("write_file", "path_policy", "outside the workspace", "Write inside the workspace"):
        assert needle in hostile["refused"]
    assert "disk full" in hostile["error"]
    assert "What would fix it" in hostile["blocked"]
    assert hostile["status"] == "failed" and "budget" in hostile["detail"]
    assert hostile["refusals"] == 1
    assert page_errors == [], page_errors


# The charts show every ended turn as its final record says: the throttled redraw has happened.
CHARTS_DRAWN_JS = """
() => {
  const {charts, renderer} = window.orketRun;
  if (!charts.available) return true;
  if (!charts.bySeat) return false;
  const expected = new Map();
  let complete = true;
  renderer.endedTurns.forEach((id) => { complete = complete && charts.turnRecords.has(id); });
  charts.turnRecords.forEach((turn) => {
    complete = complete && !["queued", "running"].includes(turn.status);
    if (!renderer.endedTurns.has(turn.id)) return;
    const seat = turn.seat || "seat";
    const item = expected.get(seat) || {tokensIn: 0, tokensOut: 0};
    item.tokensIn += turn.tokens_in || 0;
    item.tokensOut += turn.tokens_out || 0;
    expected.set(seat, item);
  });
  const {labels, datasets} = charts.bySeat.data;
  return complete && labels.length === expected.size && labels.every((seat, index) =>
    expected.has(seat)
    && datasets[0].data[index] === expected.get(seat).tokensIn
    && datasets[1].data[index] === expected.get(seat).tokensOut);
}
"""

CANCEL_STATE_JS = """
() => ({
  status: document.querySelector("[data-field=status]").textContent,
  button: document.getElementById("run-cancel").textContent,
  disabled: document.getElementById("run-cancel").disabled,
  kinds: Array.from(document.querySelectorAll("#frame-log li")).map((li) => li.dataset.kind),
})
"""


async def test_the_cancel_button_stops_a_streaming_run_and_the_page_says_so(tmp_path: Path) -> None:
    """Cancel asks first, stops the turn that is streaming, and the page ends on a true status."""
    dialogs: list[str] = []
    # The scripted model streams slowly enough that the run is mid-turn when canceled.
    async with signed_in_page(tmp_path, tokens_per_second="15", height=800) as (page, base, page_errors):
        started_run = await page.evaluate(START_RUN_JS, DEMO_EPIC)
        assert started_run["status"] == 201, started_run
        run_id = started_run["body"]["id"]
        await page.goto(f"{base}/runs/{run_id}/")
        await page.wait_for_selector("#transcript .chunk[data-kind=text]", timeout=30 * MS)

        # Declining the confirmation changes nothing.
        async def decline(dialog: Any) -> None:
            dialogs.append(dialog.message)
            await dialog.dismiss()

        cancel_requests: list[str] = []
        page.on("request", lambda request: cancel_requests.append(request.url) if "/cancel" in request.url else None)
        page.once("dialog", decline)
        await page.click("#run-cancel")
        async with asyncio.timeout(10):
            while not dialogs:
                await asyncio.sleep(0.02)
        # The click handler has returned (this runs after it): a cancel would have been sent by now.
        assert await page.evaluate("!document.getElementById('run-cancel').disabled")
        assert cancel_requests == [], cancel_requests
        untouched = await page.evaluate(STORED_EVENTS_JS, run_id)
        assert not untouched["run"]["cancel_requested"], untouched["run"]
        assert untouched["run"]["status"] == "running"

        async def accept(dialog: Any) -> None:
            dialogs.append(dialog.message)
            await dialog.accept()

        page.once("dialog", accept)
        await page.click("#run-cancel")
        await wait_until(
            page, "document.querySelector('[data-field=status]').textContent === 'canceled'", timeout=30 * MS
        )
        shown = await page.evaluate(CANCEL_STATE_JS)
        stored = await page.evaluate(STORED_EVENTS_JS, run_id)
        turns = await page.evaluate("async (run) => (await (await fetch(`/api/runs/${run}/turns/`)).json())", run_id)
        await page.screenshot(path=str(tmp_path / "run-view-canceled.png"))

    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "run-view-canceled.png", ARTIFACT.with_name("run-view-canceled.png"))
    assert dialogs == ["Cancel this run?", "Cancel this run?"]
    run = stored["run"]
    assert run["status"] == "canceled" and run["cancel_requested"], run
    assert shown["status"] == "canceled" and shown["disabled"], shown
    kinds = [event["kind"] for event in stored["events"]]
    assert "run.cancel_requested" in kinds
    assert kinds[-1] == "run.status" and stored["events"][-1]["status"] == "canceled"
    assert shown["kinds"] == kinds, "the page's log differs from the stored events"
    rows = turns["results"] if isinstance(turns, dict) else turns
    assert rows, "the run had no turns"
    assert all(turn["status"] not in ("queued", "running") for turn in rows), rows
    assert any(turn["status"] == "canceled" for turn in rows), [turn["status"] for turn in rows]
    assert page_errors == [], page_errors
