"""The deterministic scenario the scripted provider plays: what each role of the standard team answers.

    provider = ScriptedProvider(scripted_reply)

`scripted_reply` reads the markers compile_prompt puts in the messages (see agents/prompts.py) and answers as the
role would, with real tool calls written as JSON objects in ```json fences after a sentence of prose, so the
parser is exercised on every turn:

- architect: get_card_context, add_comment with a plan, write_file of a design note (docs/card-<id>.md, or
  schemas/design/card_<id>.md when governance is on), update_card_status to code_review;
- coder: get_card_context, write_file of a small Python module services/card_<id>.py and its test
  tests/test_card_<id>.py, add_comment saying what changed, update_card_status to code_review; with review feedback
  in the prompt it writes a second version of the module (the fix);
- integrity_guard: run_verification then update_card_status done with a reason, except when the card's labels
  contain `needs-changes` and the prompt shows no review feedback yet: then update_card_status in_progress
  ("Changes requested: ...") and add_note to the card's seat (or "all" when the card has none) with the feedback.

Any other role answers in prose without tool calls. No Django; the same request always gives the same reply.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agents.providers.base import ChatRequest
from agents.providers.scripted import ScriptedReply

NEEDS_CHANGES_LABEL = "needs-changes"
CHANGES_REQUESTED = (
    "Changes requested: the module must reject empty input with a ValueError, and a test must cover that case."
)
_MARKER = re.compile(r"^ORKET-([A-Z-]+): ?(.*)$", re.MULTILINE)
_SAFE = re.compile(r"[^A-Za-z0-9_]")


def markers(request: ChatRequest) -> dict[str, str]:
    """The ORKET-* markers of the prompt: the first occurrence of each name, across the messages in order."""
    found: dict[str, str] = {}
    for message in request.messages:
        if message.get("role") not in ("system", "user"):
            continue
        for match in _MARKER.finditer(str(message.get("content") or "")):
            found.setdefault(match.group(1), match.group(2).strip())
    return found


def scripted_reply(request: ChatRequest) -> ScriptedReply:
    """The scripted team's answer to one prompt compiled by agents.prompts.compile_prompt."""
    found = markers(request)
    role = found.get("ROLE", "")
    card = found.get("CARD", "")
    if not card:
        return ScriptedReply(text="I see no card in this prompt, so there is nothing for me to do.")
    if role == "architect":
        return ScriptedReply(text=_architect(found))
    if role == "coder":
        return ScriptedReply(text=_coder(found))
    if role == "integrity_guard":
        return ScriptedReply(text=_integrity_guard(found))
    return ScriptedReply(text=f"The {role or 'unknown'} role has no scripted part in this scenario; I make no calls.")


def module_path(card_id: str) -> str:
    return f"services/card_{_slug(card_id)}.py"


def module_test_path(card_id: str) -> str:
    return f"tests/test_card_{_slug(card_id)}.py"


def design_path(card_id: str, *, governance_on: bool) -> str:
    return f"schemas/design/card_{_slug(card_id)}.md" if governance_on else f"docs/card-{_slug(card_id)}.md"


# ---------------------------------------------------------------------------------------------------------------


def _slug(card_id: str) -> str:
    return _SAFE.sub("_", card_id)[:64] or "card"


def _call(prose: str, tool: str, args: dict[str, Any]) -> str:
    payload = json.dumps({"tool": tool, "args": args}, indent=2, ensure_ascii=False)
    return f"{prose}\n\n```json\n{payload}\n```\n"


def _answer(*parts: str) -> str:
    return "\n".join(parts).rstrip() + "\n"


def _architect(found: dict[str, str]) -> str:
    card = found["CARD"]
    title = found.get("CARD-TITLE", "") or f"card {card}"
    governance = found.get("GOVERNANCE") == "on"
    path = design_path(card, governance_on=governance)
    plan = (
        f"Plan for card {card} ({title}): 1. keep the change in one service module with a unit test; "
        f"2. record the design in {path}; 3. hand over to review."
    )
    note = (
        f"# Design: card {card}\n\n## {title}\n\n"
        "- One service module holds the behaviour; nothing else depends on it yet.\n"
        "- A unit test covers the normal case and empty input.\n"
        "- The integrity guard verifies before the card is done.\n"
    )
    return _answer(
        f"I am taking card {card} as the architect; first I read its context.",
        _call("Reading the card context.", "get_card_context", {}),
        _call("Here is the plan I am recording on the card.", "add_comment", {"body": plan}),
        _call("I am writing the design note into the workspace.", "write_file", {"path": path, "content": note}),
        _call(
            "The design is ready for review.",
            "update_card_status",
            {"status": "code_review", "reason": f"Design for card {card} recorded in {path}."},
        ),
    )


def _module(card: str, title: str, *, fixed: bool) -> tuple[str, str]:
    slug = _slug(card)
    doc_title = title.replace("\\", "/").replace('"', "'")
    header = f'"""Card {card}: {doc_title}."""\n\nfrom __future__ import annotations\n\nTITLE = {title!r}\n\n\n'
    if fixed:
        body = (
            "def describe(name: str) -> str:\n"
            '    """A one-line description of `name` for this card; empty names are refused."""\n'
            "    if not name.strip():\n"
            '        raise ValueError("name must not be empty")\n'
            '    return f"{TITLE}: {name.strip()}"\n'
        )
        test = (
            f'"""Tests of services/card_{slug}.py."""\n\n'
            "import pytest\n\n"
            f"from services.card_{slug} import TITLE, describe\n\n\n"
            "def test_describe_names_the_card() -> None:\n"
            '    assert describe(" widget ") == f"{TITLE}: widget"\n\n\n'
            "def test_describe_refuses_empty_names() -> None:\n"
            "    with pytest.raises(ValueError):\n"
            '        describe("  ")\n'
        )
    else:
        body = (
            "def describe(name: str) -> str:\n"
            '    """A one-line description of `name` for this card."""\n'
            '    return f"{TITLE}: {name}"\n'
        )
        test = (
            f'"""Tests of services/card_{slug}.py."""\n\n'
            f"from services.card_{slug} import TITLE, describe\n\n\n"
            "def test_describe_names_the_card() -> None:\n"
            '    assert describe("widget") == f"{TITLE}: widget"\n'
        )
    return header + body, test


def _coder(found: dict[str, str]) -> str:
    card = found["CARD"]
    title = found.get("CARD-TITLE", "") or f"card {card}"
    feedback = _count(found.get("REVIEW-FEEDBACK", "0"))
    fixed = feedback > 0
    module, test = _module(card, title, fixed=fixed)
    mpath, tpath = module_path(card), module_test_path(card)
    if fixed:
        opening = f"I am applying the review feedback on card {card} ({feedback} item(s))."
        comment = f"Applied the review feedback: {mpath} now refuses empty names, and {tpath} covers that case."
        reason = f"Review feedback on card {card} addressed."
    else:
        opening = f"I am implementing card {card}: {title}."
        comment = f"Added {mpath} with describe() and its unit test {tpath}."
        reason = f"Implementation of card {card} is complete."
    return _answer(
        opening,
        _call("First the card context.", "get_card_context", {}),
        _call("Now the module itself.", "write_file", {"path": mpath, "content": module}),
        _call("And its test.", "write_file", {"path": tpath, "content": test}),
        _call("Reporting what changed.", "add_comment", {"body": comment}),
        _call("The card is ready for review.", "update_card_status", {"status": "code_review", "reason": reason}),
    )


def _integrity_guard(found: dict[str, str]) -> str:
    card = found["CARD"]
    labels = [label.strip().lower() for label in found.get("LABELS", "").split(",")]
    feedback = _count(found.get("REVIEW-FEEDBACK", "0"))
    seat = found.get("CARD-SEAT", "") or "all"
    run = _call(f"I am reviewing card {card}; first the verification.", "run_verification", {})
    if NEEDS_CHANGES_LABEL in labels and feedback == 0:
        return _answer(
            run,
            _call(
                "The work does not meet the acceptance criteria yet, so I send it back.",
                "update_card_status",
                {"status": "in_progress", "reason": CHANGES_REQUESTED},
            ),
            _call(
                "The feedback, for the seat doing the work.", "add_note", {"body": CHANGES_REQUESTED, "to_seat": seat}
            ),
        )
    return _answer(
        run,
        _call(
            "The verification and the acceptance criteria are satisfied.",
            "update_card_status",
            {"status": "done", "reason": f"Card {card} verified: the checks pass and the acceptance criteria are met."},
        ),
    )


def _count(text: str) -> int:
    try:
        return max(int(text.strip()), 0)
    except ValueError:
        return 0
