"""The deterministic team the scripted provider plays: what each role of the standard team answers at
each step of a turn, decided from the conversation it is shown.

    provider = ScriptedProvider(scripted_reply)

`scripted_reply` reads the markers compile_prompt puts in the first messages (see agents/prompts.py)
and the observations Orket appends after each step (agents/conversation.py), and answers with one
tool call written as a JSON object in a ```json fence after a sentence of prose, so the parser and
the step loop are exercised on every step. Its answers depend on what it is shown:

- coder: reads the card context, then reads its module; if the module is missing it writes it, if it
  exists and review feedback asks for a fix it replaces the old function with `edit_file`, using the
  exact text it read (and writes the whole file when that text is not there); then writes the test,
  comments and moves the card to code_review;
- architect: reads the card context and lists the workspace, records a plan as a comment, writes a
  design note (docs/card-<id>.md, or schemas/design/card_<id>.md with governance on), hands over;
- integrity_guard reviewing: runs the verification; when the card is labelled `needs-changes` and has
  no review feedback yet it leaves a note with the feedback and sends the card back to in_progress;
  when the verification failed it sends it back saying so; otherwise it moves the card to done;
- coder on a card labelled `run-tests` (its module and test are already in the checkout): reads the card
  context, runs the tests; while they fail it reads its module and replaces the old describe() with
  `edit_file`, then runs them again; once they pass it reports the counts and moves the card to
  code_review (when they still fail after the fix it says so and ends its turn);
- integrity_guard reviewing a card labelled `run-tests`: runs the card's tests (run_tests) instead of the
  verification and decides on their status the same way;
- integrity_guard doing a card's work (a card assigned to it): reads the context, runs the
  verification, reports in a comment, and moves the card to code_review for someone else to review.

Any role whose last call was refused changes course: it leaves a note saying what was refused and
ends its turn with finish_turn rather than repeating the call. Any other role answers in prose
without tool calls. No Django; the same conversation always gives the same reply.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agents.conversation import NEXT_STEP
from agents.plan_format import DESCRIPTION_CLOSE, DESCRIPTION_OPEN, PLAN_TOOL
from agents.providers.base import ChatRequest
from agents.providers.scripted import ScriptedReply

NEEDS_CHANGES_LABEL = "needs-changes"
RUN_TESTS_LABEL = "run-tests"
CHANGES_REQUESTED = (
    "Changes requested: the module must reject empty input with a ValueError, and a test must cover that case."
)
_MARKER = re.compile(r"^ORKET-([A-Z-]+): ?(.*)$", re.MULTILINE)
_CALL = re.compile(r"^ORKET-CALL: (\d+) (\S+) (\S+)$")
_SAFE = re.compile(r"[^A-Za-z0-9_]")
_UNFIXED_BODY = (
    "def describe(name: str) -> str:\n"
    '    """A one-line description of `name` for this card."""\n'
    '    return f"{TITLE}: {name}"\n'
)
_FIXED_BODY = (
    "def describe(name: str) -> str:\n"
    '    """A one-line description of `name` for this card; empty names are refused."""\n'
    "    if not name.strip():\n"
    '        raise ValueError("name must not be empty")\n'
    '    return f"{TITLE}: {name.strip()}"\n'
)


@dataclass(frozen=True)
class Observation:
    """What one earlier call of this turn did, as the conversation shows it."""

    name: str
    decision: str  # executed, failed, refused or not_run
    arguments: dict[str, Any]
    body: str  # the result text shown under the call


def markers(request: ChatRequest) -> dict[str, str]:
    """The ORKET-* markers of the prompt: the first occurrence of each name, across the messages in order."""
    found: dict[str, str] = {}
    for message in request.messages:
        if message.get("role") not in ("system", "user"):
            continue
        for match in _MARKER.finditer(str(message.get("content") or "")):
            found.setdefault(match.group(1), match.group(2).strip())
    return found


def observations(request: ChatRequest) -> list[Observation]:
    """Every call result of this turn so far, in order, from the ORKET-OBSERVATION messages."""
    seen: list[Observation] = []
    for message in request.messages:
        content = str(message.get("content") or "")
        if message.get("role") == "user" and content.startswith("ORKET-OBSERVATION:"):
            seen += _sections(content.removesuffix("\n\n" + NEXT_STEP))
    return seen


def _sections(content: str) -> list[Observation]:
    found: list[Observation] = []
    lines = content.split("\n")
    index = 0
    while index < len(lines):
        match = _CALL.match(lines[index])
        if match is None:
            index += 1
            continue
        arguments: dict[str, Any] = {}
        start = index + 1
        if start < len(lines) and lines[start].startswith("arguments: "):
            try:
                decoded = json.loads(lines[start].removeprefix("arguments: "))
                arguments = decoded if isinstance(decoded, dict) else {}
            except ValueError:
                arguments = {}
            start += 1
        end = start
        while end < len(lines) and not _CALL.match(lines[end]):
            end += 1
        body = "\n".join(lines[start:end])
        if end < len(lines):  # the blank line that separates it from the next call's section
            body = body.removesuffix("\n")
        found.append(Observation(match.group(2), match.group(3), arguments, body))
        index = end
    return found


def scripted_reply(request: ChatRequest) -> ScriptedReply:
    """The scripted team's next answer in a conversation that started with agents.prompts.compile_prompt."""
    found = markers(request)
    role = found.get("ROLE", "")
    if found.get("PURPOSE") == "plan":
        return ScriptedReply(text=_planner(request, found, observations(request)))
    if not found.get("CARD", ""):
        return ScriptedReply(text="I see no card in this prompt, so there is nothing for me to do.")
    seen = observations(request)
    if seen and seen[-1].decision == "refused":
        return ScriptedReply(text=_change_course(seen[-1], found))
    refused = [index for index, obs in enumerate(seen) if obs.decision == "refused"]
    if refused and _done(seen[refused[-1] :], "add_note"):
        return ScriptedReply(text=_stop_after_refusal(seen[refused[-1]]))
    if role == "architect":
        return ScriptedReply(text=_architect(found, seen))
    if role == "coder" and RUN_TESTS_LABEL in _labels(found):
        return ScriptedReply(text=_coder_running_tests(found, seen))
    if role == "coder":
        return ScriptedReply(text=_coder(found, seen))
    if role == "integrity_guard":
        reviewing = found.get("PURPOSE", "review") == "review"
        return ScriptedReply(text=_integrity_guard(found, seen) if reviewing else _guard_at_work(found, seen))
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


def _done(seen: list[Observation], name: str, **arguments: Any) -> bool:
    """Whether a call to `name` (with these arguments, when given) took effect in this turn."""
    return any(
        obs.name == name
        and obs.decision == "executed"
        and all(obs.arguments.get(key) == value for key, value in arguments.items())
        for obs in seen
    )


def _last(seen: list[Observation], name: str) -> Observation | None:
    return next((obs for obs in reversed(seen) if obs.name == name), None)


def _change_course(refused: Observation, found: dict[str, str]) -> str:
    reason = refused.body.removeprefix("REFUSED by rule ").split(" The call was not run.")[0]
    if refused.name == "add_note":
        return _call(
            "My note was refused as well; I end this turn and leave the card as it is.",
            "finish_turn",
            {
                "summary": f"Stopped after {refused.name} was refused.",
                "remaining": reason,
            },
        )
    if refused.name == "finish_turn":
        return "Even ending my turn was refused; I stop here without further calls."
    return _call(
        f"My {refused.name} call was refused ({reason[:200]}). I will not repeat it; I leave a note instead.",
        "add_note",
        {"body": f"{refused.name} was refused on card {found['CARD']}: {reason}", "to_seat": "all"},
    )


def _stop_after_refusal(refused: Observation) -> str:
    return _call(
        "I noted the refusal; rather than try the same thing again, I end my turn.",
        "finish_turn",
        {"summary": f"Stopped after {refused.name} was refused.", "remaining": refused.body[:1000]},
    )


def _architect(found: dict[str, str], seen: list[Observation]) -> str:
    card = found["CARD"]
    title = found.get("CARD-TITLE", "") or f"card {card}"
    path = design_path(card, governance_on=found.get("GOVERNANCE") == "on")
    if not _done(seen, "get_card_context"):
        return _call(f"I am taking card {card} as the architect; first I read its context.", "get_card_context", {})
    if not _last(seen, "list_directory"):
        return _call("Next, what the workspace already holds.", "list_directory", {"path": "."})
    listing = _last(seen, "list_directory")
    existing = "an empty workspace" if listing is None or '"entries": []' in listing.body else "the existing files"
    if not _done(seen, "add_comment"):
        plan = (
            f"Plan for card {card} ({title}), building on {existing}: 1. keep the change in one service module with "
            f"a unit test; 2. record the design in {path}; 3. hand over to review."
        )
        return _call("Here is the plan I am recording on the card.", "add_comment", {"body": plan})
    if not _done(seen, "write_file", path=path):
        note = (
            f"# Design: card {card}\n\n## {title}\n\n"
            "- One service module holds the behaviour; nothing else depends on it yet.\n"
            "- A unit test covers the normal case and empty input.\n"
            "- The integrity guard verifies before the card is done.\n"
        )
        return _call("I am writing the design note into the workspace.", "write_file", {"path": path, "content": note})
    return _call(
        "The design is ready for review.",
        "update_card_status",
        {"status": "code_review", "reason": f"Design for card {card} recorded in {path}."},
    )


def _module(card: str, title: str, *, fixed: bool) -> tuple[str, str]:
    slug = _slug(card)
    doc_title = title.replace("\\", "/").replace('"', "'")
    header = f'"""Card {card}: {doc_title}."""\n\nfrom __future__ import annotations\n\nTITLE = {title!r}\n\n\n'
    if fixed:
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
        test = (
            f'"""Tests of services/card_{slug}.py."""\n\n'
            f"from services.card_{slug} import TITLE, describe\n\n\n"
            "def test_describe_names_the_card() -> None:\n"
            '    assert describe("widget") == f"{TITLE}: widget"\n'
        )
    return header + (_FIXED_BODY if fixed else _UNFIXED_BODY), test


def _coder(found: dict[str, str], seen: list[Observation]) -> str:
    card = found["CARD"]
    title = found.get("CARD-TITLE", "") or f"card {card}"
    feedback = _count(found.get("REVIEW-FEEDBACK", "0"))
    fixed = feedback > 0
    module, test = _module(card, title, fixed=fixed)
    mpath, tpath = module_path(card), module_test_path(card)
    if not _done(seen, "get_card_context"):
        opening = (
            f"I am applying the review feedback on card {card} ({feedback} item(s))."
            if fixed
            else f"I am implementing card {card}: {title}."
        )
        return _call(f"{opening} First the card context.", "get_card_context", {})
    read = _last(seen, "read_file")
    if read is None:
        return _call("Before I change anything I read the module as it is now.", "read_file", {"path": mpath})
    if not (_done(seen, "write_file", path=mpath) or _done(seen, "edit_file", path=mpath)):
        return _module_change(read, seen, mpath, module, fixed)
    if not _done(seen, "write_file", path=tpath):
        return _call("Now its test.", "write_file", {"path": tpath, "content": test})
    if not _done(seen, "add_comment"):
        how = "replaced describe() in place" if _done(seen, "edit_file", path=mpath) else f"wrote {mpath}"
        comment = (
            f"Applied the review feedback: {how} so it refuses empty names, and {tpath} covers that case."
            if fixed
            else f"Added {mpath} with describe() and its unit test {tpath}."
        )
        return _call("Reporting what changed.", "add_comment", {"body": comment})
    reason = f"Review feedback on card {card} addressed." if fixed else f"Implementation of card {card} is complete."
    return _call("The card is ready for review.", "update_card_status", {"status": "code_review", "reason": reason})


def _module_change(read: Observation, seen: list[Observation], mpath: str, module: str, fixed: bool) -> str:
    """Edit what was read when the fix can be made in place; otherwise write the whole module."""
    edit = _last(seen, "edit_file")
    if read.decision == "executed" and fixed and _UNFIXED_BODY in read.body and edit is None:
        return _call(
            f"{mpath} exists; I replace the old describe() with one that refuses empty names.",
            "edit_file",
            {"path": mpath, "old_text": _UNFIXED_BODY, "new_text": _FIXED_BODY},
        )
    why = "it does not exist yet" if read.decision != "executed" else "I rewrite it whole"
    if edit is not None and edit.decision == "failed":
        why = "the edit did not apply, so I write the whole file"
    return _call(f"Writing {mpath}: {why}.", "write_file", {"path": mpath, "content": module})


def _labels(found: dict[str, str]) -> list[str]:
    return [label.strip().lower() for label in found.get("LABELS", "").split(",")]


def _coder_running_tests(found: dict[str, str], seen: list[Observation]) -> str:
    card = found["CARD"]
    mpath = module_path(card)
    if not _done(seen, "get_card_context"):
        return _call(f"I am taking card {card}; its tests decide. First the card context.", "get_card_context", {})
    tests = _last(seen, "run_tests")
    if tests is None or _position(seen, "run_tests") < _position(seen, "edit_file"):
        why = "after my fix" if _last(seen, "edit_file") else "as the code is now"
        return _call(f"Running the card's tests {why}.", "run_tests", {})
    status = _verification_status(seen, "run_tests")
    if status != "passed" and not _last(seen, "edit_file"):
        if _position(seen, "read_file") < _position(seen, "run_tests"):
            return _call(f"The tests say {status}; I read {mpath} to see why.", "read_file", {"path": mpath})
        read = _last(seen, "read_file")
        if read is not None and _UNFIXED_BODY in read.body:
            return _call(
                "describe() does not refuse empty names, which the failing test expects; I fix it in place.",
                "edit_file",
                {"path": mpath, "old_text": _UNFIXED_BODY, "new_text": _FIXED_BODY},
            )
    if status != "passed":
        return _call(
            "The tests still do not pass and I have no other fix; I stop here.",
            "finish_turn",
            {"summary": f"The card's tests say {status}.", "remaining": "Make the card's tests pass."},
        )
    if not _done(seen, "add_comment"):
        counts = _header(tests)
        body = f"The card's tests pass: {counts.get('passed')} passed, {counts.get('failed')} failed."
        return _call("Reporting the test result.", "add_comment", {"body": body})
    return _call(
        "The card's tests pass; it is ready for review.",
        "update_card_status",
        {"status": "code_review", "reason": f"Card {card}: its tests pass."},
    )


def _position(seen: list[Observation], name: str) -> int:
    """Where the last call to `name` is in the turn, or -1."""
    return next((index for index in range(len(seen) - 1, -1, -1) if seen[index].name == name), -1)


def _header(observation: Observation) -> dict[str, Any]:
    """The JSON header of a result: its first line (results with text content put that after it)."""
    try:
        decoded = json.loads(observation.body.split("\n", 1)[0])
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _verification_status(seen: list[Observation], tool: str = "run_verification") -> str:
    run = _last(seen, tool)
    if run is None or run.decision != "executed":
        return "error"
    return str(_header(run).get("status", "unknown"))


def _integrity_guard(found: dict[str, str], seen: list[Observation]) -> str:
    card = found["CARD"]
    labels = [label.strip().lower() for label in found.get("LABELS", "").split(",")]
    feedback = _count(found.get("REVIEW-FEEDBACK", "0"))
    seat = found.get("CARD-SEAT", "") or "all"
    tool = "run_tests" if RUN_TESTS_LABEL in labels else "run_verification"
    if not _last(seen, tool):
        what = "its tests" if tool == "run_tests" else "the verification"
        return _call(f"I am reviewing card {card}; first {what}.", tool, {})
    status = _verification_status(seen, tool)
    if NEEDS_CHANGES_LABEL in labels and feedback == 0:
        if not _done(seen, "add_note"):
            return _call(
                "The work does not meet the acceptance criteria yet; first the feedback, for the seat doing the work.",
                "add_note",
                {"body": CHANGES_REQUESTED, "to_seat": seat},
            )
        return _call(
            "Now I send it back.", "update_card_status", {"status": "in_progress", "reason": CHANGES_REQUESTED}
        )
    if status == "failed":
        return _call(
            "The verification failed, so the card goes back.",
            "update_card_status",
            {"status": "in_progress", "reason": "The verification failed; make it pass before review."},
        )
    return _call(
        f"The verification says {status} and the acceptance criteria are satisfied.",
        "update_card_status",
        {"status": "done", "reason": f"Card {card} verified ({status}): the acceptance criteria are met."},
    )


def _guard_at_work(found: dict[str, str], seen: list[Observation]) -> str:
    card = found["CARD"]
    if not _done(seen, "get_card_context"):
        return _call(f"Card {card} is assigned to me; I start from its context.", "get_card_context", {})
    if not _last(seen, "run_verification"):
        return _call("What the card's verification says now.", "run_verification", {})
    if not _done(seen, "add_comment"):
        report = f"Checked card {card}: the verification says {_verification_status(seen)}."
        return _call("My findings, on the card.", "add_comment", {"body": report})
    return _call(
        "Another seat must review what I did.",
        "update_card_status",
        {"status": "code_review", "reason": f"Card {card} checked; ready for review."},
    )


def _count(text: str) -> int:
    try:
        return max(int(text.strip()), 0)
    except ValueError:
        return 0


# -- planning an epic --------------------------------------------------------------------------------------------

_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.+?)\s*$")
MAX_PLANNED_ITEMS = 12


def _planner(request: ChatRequest, found: dict[str, str], seen: list[Observation]) -> str:
    """The architect planning an epic: looks at the repository once, then proposes one design card and one
    implementation card per item of the epic description, each implementation card after the design."""
    if not _last(seen, "list_directory"):
        return _call("Before planning, I look at what the repository already holds.", "list_directory", {"path": "."})
    epic = found.get("EPIC-NAME", "") or "the epic"
    items = description_items(_description(request)) or [epic]
    roles = dict(pair.split("=", 1) for pair in found.get("SEAT-ROLES", "").split(",") if "=" in pair)
    architect = next((seat for seat, role in roles.items() if role == "architect"), found.get("SEAT", ""))
    coder = next((seat for seat, role in roles.items() if role == "coder"), architect)
    governance = found.get("GOVERNANCE") == "on"
    cards: list[dict[str, Any]] = [
        {
            "id": "design",
            "summary": f"Design {epic}"[:200],
            "seat": architect,
            "priority": "high",
            "description": f"Decide the modules of {epic} and their responsibilities.",
            "requirements": "Cover every item of the epic description.",
            "acceptance_criteria": "A design note exists in the workspace.",
            "depends_on": [],
            **({"component": "schemas"} if governance else {}),
        }
    ]
    for number, item in enumerate(items, 1):
        cards.append(
            {
                "id": f"item-{number}",
                "summary": _summary(item),
                "seat": coder,
                "priority": "medium",
                "description": item,
                "requirements": f"Implement: {item}",
                "acceptance_criteria": "Works as described; has a unit test.",
                "depends_on": ["design"],
                **({"component": "services"} if governance else {}),
            }
        )
    return _call(
        f"The plan for {epic}: a design card, then {len(items)} implementation card(s), one per item of the "
        "description.",
        PLAN_TOOL,
        {"cards": cards},
    )


def _description(request: ChatRequest) -> str:
    for message in request.messages:
        content = str(message.get("content") or "")
        if DESCRIPTION_OPEN in content and DESCRIPTION_CLOSE in content:
            return content.split(DESCRIPTION_OPEN, 1)[1].split(DESCRIPTION_CLOSE, 1)[0]
    return ""


def description_items(description: str) -> list[str]:
    """The items of an epic description: its bullet or numbered lines, else its sentences."""
    lines = [line for line in description.splitlines() if line.strip()]
    bullets = [match.group(1) for line in lines if (match := _BULLET.match(line))]
    items = bullets or [
        sentence.strip().rstrip(".")
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", description)
        if len(sentence.strip().rstrip(".")) > 3
    ]
    return items[:MAX_PLANNED_ITEMS]


def _summary(item: str) -> str:
    text = item.strip().rstrip(".")
    return (text[:1].upper() + text[1:])[:200]
