"""The steps of a turn in the run view, in headless Chromium against the real embedded server.

The demo project is set to require a passed verification, so the scripted integrity guard's move to
done is refused (its cards have no fixtures) and the card waits for a person: a real refusal, in the
demo epic run by the scripted team. The page shows each turn's steps as they stream in (a header per
step, the step's answer, its calls with their results folded), the refusal marked in words and
colour, and the same steps again when the page is loaded afresh from the stored events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chromium import wait_until
from tests.browser.test_run_view import DEMO_EPIC, MS, START_RUN_JS, STORED_EVENTS_JS, signed_in_page

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

SCREENSHOT_DIR = Path("/tmp")

REQUIRE_VERIFICATION_JS = """
async () => {
  const token = (document.cookie.match(/(?:^|; )csrftoken=([^;]*)/) || [])[1] || "";
  const projects = await (await fetch("/api/projects/")).json();
  const demo = (projects.results || projects).find((project) => project.slug === "demo");
  const response = await fetch(`/api/projects/${demo.id}/settings/`, {
    method: "PATCH",
    headers: {"X-CSRFToken": decodeURIComponent(token), "Content-Type": "application/json"},
    body: JSON.stringify({require_verification: true}),
  });
  return {status: response.status, body: await response.json()};
}
"""

# Every turn as the page shows it: its head, then each step block with what sits inside it.
TURNS_JS = """
() => Array.from(document.querySelectorAll("#transcript article.turn")).map((turn) => ({
  id: Number(turn.dataset.turn),
  seat: turn.querySelector(".turn-head .seat").textContent,
  role: turn.querySelector(".turn-head .role").textContent,
  purpose: turn.querySelector(".turn-head .purpose").textContent,
  resumed: !turn.querySelector(".turn-head .resumed-badge").hidden,
  steps: Array.from(turn.querySelectorAll(":scope > .turn-body > section.step")).map((step) => ({
    number: Number(step.dataset.step),
    title: step.querySelector(".step-title").textContent,
    startSeq: Number(step.querySelector(".step-start").dataset.seq),
    endSeq: Number(step.querySelector(".step-end").dataset.seq || 0),
    end: step.querySelector(".step-end").textContent,
    open: step.classList.contains("step-open"),
    refused: step.classList.contains("step-refused"),
    text: Array.from(step.querySelectorAll(".step-body .chunk[data-kind=text]")).map((c) => c.textContent).join(""),
    calls: Array.from(step.querySelectorAll(".step-body [data-kind='tool.call']")).map((c) => Number(c.dataset.seq)),
    results: Array.from(step.querySelectorAll(".step-body details.tool-result")).map((d) => Number(d.dataset.seq)),
  })),
}))
"""

SHOWN_SEQS_JS = """
() => Array.from(document.querySelectorAll("#run-lines [data-seq], #transcript [data-seq]")).map(
  (node) => [Number(node.dataset.seq), node.dataset.kind])
"""

REFUSAL_JS = """
() => {
  const line = document.querySelector("#transcript .step .line.refused");
  const label = line.querySelector(".refusal-label");
  const style = getComputedStyle(label);
  return {
    text: line.textContent,
    label: label.textContent,
    labelVisible: label.offsetWidth > 0 && label.offsetHeight > 0,
    labelBackground: style.backgroundColor,
    lineBackground: getComputedStyle(line).backgroundColor,
    inCallGroup: line.parentElement.classList.contains("call-group"),
    groupRefused: line.parentElement.classList.contains("call-refused"),
    step: Number(line.closest("section.step").dataset.step),
    stepRefused: line.closest("section.step").classList.contains("step-refused"),
    stepEnd: line.closest("section.step").querySelector(".step-end").textContent,
  };
}
"""


# A turn cut off in step 2 and resumed by a second attempt, as an export file: the replay view draws
# it with the same renderer as the live view.
RESUMED_EVENTS: list[dict[str, Any]] = [
    {"kind": "run.status", "turn": None, "card": None, "status": "running", "reason": "started"},
    {"kind": "turn.queued", "turn": 9, "card": 1, "seat": "coder", "role": "coder", "purpose": "work"},
    {"kind": "turn.started", "turn": 9, "card": 1, "seat": "coder", "role": "coder", "purpose": "work", "attempt": 1},
    {
        "kind": "step.started",
        "turn": 9,
        "card": 1,
        "step": 1,
        "request_tokens": 900,
        "shortened": 0,
        "omitted_steps": 0,
    },
    {"kind": "text", "turn": 9, "card": 1, "text": "Reading first."},
    {"kind": "tool.call", "turn": 9, "card": 1, "step": 1, "name": "read_file", "arguments": {"path": "a.py"}},
    {
        "kind": "tool.result",
        "turn": 9,
        "card": 1,
        "step": 1,
        "name": "read_file",
        "result": {"path": "a.py", "content": "line one\nline two\n"},
    },
    {"kind": "step.finished", "turn": 9, "card": 1, "step": 1, "outcome": "calls", "calls": 1, "refused": 0},
    {
        "kind": "step.started",
        "turn": 9,
        "card": 1,
        "step": 2,
        "request_tokens": 1200,
        "shortened": 1,
        "omitted_steps": 0,
    },
    {"kind": "model.schema_shape", "turn": 9, "card": None, "profile": "local", "shape": "json_schema", "detail": ""},
    {"kind": "text", "turn": 9, "card": 1, "text": "Writing"},
    {"kind": "turn.requeued", "turn": 9, "card": 1, "reason": "the worker stopped"},
    {"kind": "turn.started", "turn": 9, "card": 1, "seat": "coder", "role": "coder", "purpose": "work", "attempt": 2},
    {"kind": "turn.resumed", "turn": 9, "card": 1, "steps_done": 1, "reason": "Earlier steps are on record."},
    {
        "kind": "step.started",
        "turn": 9,
        "card": 1,
        "step": 2,
        "request_tokens": 1200,
        "shortened": 1,
        "omitted_steps": 0,
    },
    {"kind": "text", "turn": 9, "card": 1, "text": "Writing again."},
    {"kind": "tool.call", "turn": 9, "card": 1, "step": 2, "name": "write_file", "arguments": {"path": "../x"}},
    {
        "kind": "tool.refused",
        "turn": 9,
        "card": 1,
        "step": 2,
        "name": "write_file",
        "rule": "path_refused",
        "message": "'../x' leaves the workspace.",
    },
    {"kind": "step.finished", "turn": 9, "card": 1, "step": 2, "outcome": "calls", "calls": 1, "refused": 1},
    {"kind": "turn.failed", "turn": 9, "card": 1, "outcome": "refused"},
]

RESUMED_JS = """
() => {
  const turn = document.querySelector("#transcript article.turn[data-turn='9']");
  const steps = Array.from(turn.querySelectorAll("section.step"));
  const second = steps[1];
  return {
    resumed: !turn.querySelector(".resumed-badge").hidden,
    resumedLine: turn.querySelector(".line.resumed").textContent,
    steps: steps.map((step) => step.querySelector(".step-title").textContent),
    again: second.querySelector("[data-kind='step.started'].line").textContent,
    text: Array.from(second.querySelectorAll(".chunk")).map((c) => c.textContent).join("|"),
    note: second.querySelector(".line.schema-shape").textContent,
    label: second.querySelector(".line.refused .refusal-label").textContent,
    refused: second.classList.contains("step-refused"),
    request: second.querySelector(".step-request").textContent,
    first: steps[0].querySelector("details.tool-result .fold-first").textContent,
  };
}
"""


def resumed_export() -> str:
    lines: list[dict[str, Any]] = [{"type": "run", "run": {"id": 998, "epic": {"name": "Resumed"}}}]
    for seq, event in enumerate(RESUMED_EVENTS, start=1):
        lines.append({"type": "event", "event": {"seq": seq, "at": f"2026-01-01T00:00:{seq:02d}+00:00", **event}})
    return "\n".join(json.dumps(line) for line in lines) + "\n"


def step_events(events: list[dict[str, Any]], turn: int) -> list[dict[str, Any]]:
    return [event for event in events if event["turn"] == turn and event["kind"].startswith("step.")]


async def test_the_run_view_shows_each_step_folds_results_and_marks_refusals(tmp_path: Path) -> None:
    async with signed_in_page(tmp_path, tokens_per_second="40", height=1000) as (page, base, page_errors):
        console_errors: list[str] = []
        page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
        required = await page.evaluate(REQUIRE_VERIFICATION_JS)
        assert required["status"] == 200 and required["body"]["require_verification"] is True, required
        started_run = await page.evaluate(START_RUN_JS, DEMO_EPIC)
        assert started_run["status"] == 201, started_run
        run_id = started_run["body"]["id"]

        await page.goto(f"{base}/runs/{run_id}/")
        # Steps appear while the run goes on: step 2 of the first turn has begun, the run is not over.
        await page.wait_for_selector("#transcript section.step[data-step='2'] .step-start[data-seq]", timeout=30 * MS)
        live: dict[str, Any] = await page.evaluate("window.orketRun.state()")
        assert not live["final"], f"the run ended before its steps could be watched: {live}"

        await wait_until(page, "window.orketRun.state().done", timeout=90 * MS)
        stored = await page.evaluate(STORED_EVENTS_JS, run_id)
        turns = await page.evaluate(TURNS_JS)
        shown = await page.evaluate(SHOWN_SEQS_JS)
        refusal = await page.evaluate(REFUSAL_JS)

        # A tool result is folded to its first line and opens, whole, on a click.
        fold = page.locator("#transcript details.tool-result").first
        assert await fold.evaluate("(node) => node.open") is False
        assert await fold.locator(".fold-body").is_visible() is False
        first_line = await fold.locator(".fold-first").text_content()
        await fold.locator("summary").click()
        assert await fold.evaluate("(node) => node.open") is True
        assert await fold.locator(".fold-body").is_visible() is True
        full_result = await fold.locator(".fold-body").text_content()
        fold_seq = int(await fold.get_attribute("data-seq") or 0)
        await page.locator("#transcript .line.refused").scroll_into_view_if_needed()
        await page.screenshot(path=str(SCREENSHOT_DIR / "orket-run-steps.png"), full_page=True)
        await (
            page.locator("#transcript article.turn")
            .nth(1)
            .screenshot(path=str(SCREENSHOT_DIR / "orket-run-refusal.png"))
        )
        await page.locator("#transcript article.turn section.step").first.screenshot(
            path=str(SCREENSHOT_DIR / "orket-run-step.png")
        )

        # Loaded afresh, the page rebuilds the same steps from the stored events.
        await page.reload()
        await wait_until(page, "window.orketRun.state().done", timeout=30 * MS)
        reloaded = await page.evaluate(TURNS_JS)

        # A resumed turn, played from an export file: one block per step, the step asked again marked.
        await page.goto(f"{base}/runs/{run_id}/replay/")
        await wait_until(page, "window.orketRun.state().total > 0", timeout=15 * MS)
        export_path = tmp_path / "resumed.jsonl"
        export_path.write_text(resumed_export())
        await page.set_input_files("#replay-file", str(export_path))
        await wait_until(page, f"window.orketRun.state().total === {len(RESUMED_EVENTS)}", timeout=15 * MS)
        await page.select_option("#replay-speed", "0")
        await page.click("#replay-play")
        await wait_until(page, f"window.orketRun.state().lastSeq === {len(RESUMED_EVENTS)}", timeout=20 * MS)
        resumed = await page.evaluate(RESUMED_JS)

    events = stored["events"]
    by_seq = {event["seq"]: event for event in events}
    assert stored["run"]["status"] == "failed" and "blocked (review)" in stored["run"]["status_reason"]
    assert sorted(seq for seq, _ in shown) == list(range(1, stored["last_seq"] + 1)), "an event shown twice or not"
    assert all(kind == by_seq[seq]["kind"] for seq, kind in shown)

    work, review = turns[0], turns[1]
    assert (work["seat"], work["role"], work["purpose"]) == ("lead_architect", "architect", "for work")
    assert (review["role"], review["purpose"]) == ("integrity_guard", "for review")
    assert not work["resumed"] and not review["resumed"]
    for turn in (work, review):
        recorded = step_events(events, turn["id"])
        started = [event for event in recorded if event["kind"] == "step.started"]
        finished = [event for event in recorded if event["kind"] == "step.finished"]
        # One header per step, in order, numbered from 1, each filled by its own events.
        assert [step["number"] for step in turn["steps"]] == list(range(1, len(started) + 1))
        assert [step["title"] for step in turn["steps"]] == [f"Step {n}" for n in range(1, len(started) + 1)]
        assert [step["startSeq"] for step in turn["steps"]] == [event["seq"] for event in started]
        assert [step["endSeq"] for step in turn["steps"]] == [event["seq"] for event in finished]
        for step, end in zip(turn["steps"], finished, strict=True):
            assert not step["open"]
            assert f"{end['tokens_in']:,} in / {end['tokens_out']:,} out tokens" in step["end"], step
            assert "model " in step["end"] and "engine " in step["end"]
            # The step holds its own answer and calls, nothing of another step.
            inside = [
                event
                for event in events
                if event["turn"] == turn["id"] and step["startSeq"] < event["seq"] < step["endSeq"]
            ]
            assert step["text"] == "".join(event["text"] for event in inside if event["kind"] == "text")
            assert step["calls"] == [event["seq"] for event in inside if event["kind"] == "tool.call"]
            assert step["results"] == [event["seq"] for event in inside if event["kind"] == "tool.result"]
    assert len(work["steps"]) == 5 and all(step["calls"] for step in work["steps"])

    # The fold: its first line in the summary, the whole result once opened.
    result = by_seq[fold_seq]["result"]
    assert by_seq[fold_seq]["kind"] == "tool.result"
    assert first_line and first_line.removesuffix("...") in full_result
    for value in result.values() if isinstance(result, dict) else [result]:
        if isinstance(value, str):
            assert value.strip() in full_result

    # The refusal: a distinct class, words that name the rule, and a colour of its own.
    refused = next(event for event in events if event["kind"] == "tool.refused")
    assert refused["rule"] == "verification_required"
    assert refusal["label"] == "refused: verification_required" and refusal["labelVisible"]
    assert refusal["labelBackground"] == "rgb(180, 35, 24)", refusal
    assert refusal["lineBackground"] not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"), refusal
    assert refusal["inCallGroup"] and refusal["groupRefused"], refusal
    assert refusal["step"] == refused["step"] and refusal["stepRefused"], refusal
    assert "1 refused" in refusal["stepEnd"] and "blocked the card" in refusal["stepEnd"]
    assert "update_card_status" in refusal["text"] and refused["message"][:60] in refusal["text"]

    # Backfill and the live stream build the same steps.
    assert reloaded == turns

    assert resumed["resumed"] and "Resumed: 1 earlier step(s)" in resumed["resumedLine"], resumed
    assert resumed["steps"] == ["Step 1", "Step 2"], resumed
    assert "Step 2 asked again" in resumed["again"], resumed
    assert resumed["text"] == "Writing|Writing again.", resumed
    assert "json_schema" in resumed["note"] and "local" in resumed["note"], resumed
    assert resumed["label"] == "refused: path_refused" and resumed["refused"], resumed
    assert "1 message(s) shortened" in resumed["request"], resumed
    assert resumed["first"] == "path: a.py", resumed
    assert page_errors == [], page_errors
    assert console_errors == [], console_errors
