"""The prompt compiler: a pure function from everything a turn knows to the messages sent to the model.

    compiled = compile_prompt(PromptContext(role_name="coder", seat="senior_developer", card=CardContext(...)))
    compiled.messages  # [{"role": "system", ...}, {"role": "user", ...}]
    compiled.tools     # OpenAI-style function specs for the role's tools (only when context.native_tools)

No Django, no I/O; the same context always gives the same text.

Markers. Both messages start with machine-readable lines that the scripted team (agents/scripted_team.py) and
tests rely on. Values are single-line (newlines become spaces); each marker appears first in its message,
before any text that came from a person or a model, so the first occurrence is the real one.

System message:
    ORKET-ROLE: <role name>
    ORKET-PURPOSE: work|review
    ORKET-SEAT: <seat name>
    ORKET-GOVERNANCE: on|off
    ORKET-CAN-FINALIZE: yes|no

User message:
    ORKET-CARD: <card id>
    ORKET-CARD-TITLE: <title>
    ORKET-CARD-STATUS: <status>
    ORKET-CARD-SEAT: <the seat the card is assigned to, may be empty>
    ORKET-LABELS: <labels, comma separated, may be empty>
    ORKET-REVIEW-FEEDBACK: <number of review feedback items>
    ORKET-VERIFICATION: none|passed|failed|other (from the first word of latest_verification)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.catalog import TOOL_NAMES
from boards.governance import COMPONENT_FOLDERS

CARD_STATUSES: tuple[str, ...] = (
    "ready",
    "in_progress",
    "blocked",
    "waiting_for_developer",
    "ready_for_testing",
    "code_review",
    "done",
    "canceled",
)
WAIT_REASONS: tuple[str, ...] = ("resource", "dependency", "review", "input")
VERIFICATION_FOLDER = "verification"
# How much of a diff goes into a prompt; the rest is cut with a note.
MAX_PROMPT_DIFF_CHARS = 60_000

_PATH_PROP = {"type": "string", "description": "A path relative to the card's workspace, with forward slashes."}

TOOL_SCHEMAS: dict[str, dict[str, Any]] = {
    "read_file": {
        "type": "object",
        "properties": {"path": _PATH_PROP},
        "required": ["path"],
        "additionalProperties": False,
    },
    "write_file": {
        "type": "object",
        "properties": {
            "path": _PATH_PROP,
            "content": {"type": "string", "description": "The whole new content of the file (UTF-8, at most 1 MiB)."},
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    },
    "list_directory": {
        "type": "object",
        "properties": {"path": {**_PATH_PROP, "description": "A folder relative to the workspace; omit for the top."}},
        "required": [],
        "additionalProperties": False,
    },
    "delete_file": {
        "type": "object",
        "properties": {
            "path": _PATH_PROP,
            "confirm": {"type": "boolean", "description": "Must be true: deleting is deliberate."},
        },
        "required": ["path", "confirm"],
        "additionalProperties": False,
    },
    "get_card_context": {"type": "object", "properties": {}, "required": [], "additionalProperties": False},
    "add_comment": {
        "type": "object",
        "properties": {"body": {"type": "string", "minLength": 1, "maxLength": 20_000}},
        "required": ["body"],
        "additionalProperties": False,
    },
    "update_card_status": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": list(CARD_STATUSES)},
            "wait_reason": {
                "type": "string",
                "enum": list(WAIT_REASONS),
                "description": "Required when the status is blocked or waiting_for_developer.",
            },
            "reason": {"type": "string", "maxLength": 2000, "description": "Why, in one or two sentences."},
        },
        "required": ["status"],
        "additionalProperties": False,
    },
    "create_card": {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "minLength": 5, "maxLength": 200},
            "description": {"type": "string", "maxLength": 20_000},
            "seat": {"type": "string", "minLength": 1, "maxLength": 80},
            "depends_on": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 50},
        },
        "required": ["summary"],
        "additionalProperties": False,
    },
    "add_note": {
        "type": "object",
        "properties": {
            "body": {"type": "string", "minLength": 1, "maxLength": 20_000},
            "to_seat": {"type": "string", "minLength": 1, "maxLength": 80, "description": 'A seat name or "all".'},
        },
        "required": ["body"],
        "additionalProperties": False,
    },
    "run_verification": {"type": "object", "properties": {}, "required": [], "additionalProperties": False},
    "search_code": {
        "type": "object",
        "properties": {
            "pattern": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "description": "A regular expression (Python syntax), or plain text when literal is true.",
            },
            "literal": {"type": "boolean", "description": "Match the pattern as plain text."},
            "path": {**_PATH_PROP, "description": "A folder or file to search in; omit for the whole workspace."},
        },
        "required": ["pattern"],
        "additionalProperties": False,
    },
    "edit_file": {
        "type": "object",
        "properties": {
            "path": _PATH_PROP,
            "old_text": {
                "type": "string",
                "minLength": 1,
                "description": "Text that occurs exactly once in the file, copied exactly (with its indentation).",
            },
            "new_text": {"type": "string", "description": "The text that replaces it."},
        },
        "required": ["path", "old_text", "new_text"],
        "additionalProperties": False,
    },
    "git_diff": {
        "type": "object",
        "properties": {"path": {**_PATH_PROP, "description": "Limit the diff to one file or folder; optional."}},
        "required": [],
        "additionalProperties": False,
    },
    "run_command": {
        "type": "object",
        "properties": {
            "argv": {
                "type": "array",
                "items": {"type": "string", "maxLength": 4000},
                "maxItems": 64,
                "description": 'The program and its arguments, e.g. ["python3", "-m", "pytest", "-x"]; no shell.',
            },
            "workdir": {**_PATH_PROP, "description": "A folder of the checkout to run in; omit for the top."},
        },
        "required": ["argv"],
        "additionalProperties": False,
    },
    "run_tests": {
        "type": "object",
        "properties": {
            "path": {**_PATH_PROP, "description": "Run only the tests in this file or folder; optional."},
            "args": {
                "type": "array",
                "items": {"type": "string", "maxLength": 400},
                "maxItems": 32,
                "description": "Extra arguments for the test command (e.g. -k name); optional.",
            },
        },
        "required": [],
        "additionalProperties": False,
    },
    "finish_turn": {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "minLength": 1, "maxLength": 4000, "description": "What you did."},
            "remaining": {"type": "string", "maxLength": 4000, "description": "What is left to do, if anything."},
        },
        "required": ["summary"],
        "additionalProperties": False,
    },
}

TOOL_DESCRIPTIONS: dict[str, str] = {
    "read_file": "Read a text file of the card's workspace.",
    "write_file": "Create or replace a file of the card's workspace with the given content.",
    "list_directory": "List the files and folders of a folder of the card's workspace.",
    "delete_file": "Delete a file of the card's workspace; needs confirm: true.",
    "get_card_context": "Get the card with its requirements, acceptance criteria, dependencies, notes and comments.",
    "add_comment": "Add a comment to the card: your report of what you did, decided or found.",
    "update_card_status": "Move the card to another status (with wait_reason for blocked or waiting_for_developer).",
    "create_card": "Create a new card in the same epic (summary of at least 5 characters).",
    "add_note": 'Leave a note for another seat (to_seat: a seat name, or "all").',
    "run_verification": "Run the card's verification and get its result.",
    "search_code": "Search the workspace's text files for a regular expression or plain text; lists path:line hits.",
    "edit_file": "Replace one exact, unique piece of text in a file (old_text must occur exactly once).",
    "git_diff": "Show what this card changed so far: its branch against the base branch.",
    "run_command": "Run a program (argv, no shell) isolated, on a throwaway copy of the workspace.",
    "run_tests": "Run the workspace's tests isolated: pass/fail counts and output.",
    "finish_turn": "End your turn with a summary of what you did and what is left; the card moves on.",
}

assert set(TOOL_SCHEMAS) == set(TOOL_NAMES) == set(TOOL_DESCRIPTIONS)


@dataclass(frozen=True)
class Dialect:
    model_family: str = "generic"
    output_format: str = "json"  # "json" | "native_tools" | "text"
    constraints: Sequence[str] = ()
    guardrail: str = ""


@dataclass(frozen=True)
class CardContext:
    id: int | str
    title: str
    description: str = ""
    status: str = "ready"
    requirements: str = ""
    acceptance_criteria: str = ""
    labels: Sequence[str] = ()
    epic_name: str = ""
    seat: str = ""  # the seat the card is assigned to


@dataclass(frozen=True)
class DependencyOutcome:
    card_id: int | str
    title: str
    status: str
    summary: str = ""


@dataclass(frozen=True, kw_only=True)
class PromptContext:
    role_name: str
    card: CardContext
    seat: str = ""
    role_intent: str = ""
    responsibilities: Sequence[str] = ()
    role_constraints: Sequence[str] = ()
    allowed_tools: Sequence[str] = ()
    can_finalize: bool = False
    dialect: Dialect | None = None
    governance_on: bool = False
    ethos: str = ""
    # (card id, title, status, summary) tuples or DependencyOutcome objects
    dependency_outcomes: Sequence[DependencyOutcome | tuple[Any, str, str, str]] = ()
    notes: Sequence[str] = ()
    latest_verification: str | None = None
    review_feedback: Sequence[str] = ()
    diff: str = ""
    native_tools: bool = False
    purpose: str = ""  # "work" on the card or "review" it; empty: review exactly when the role can finalize
    people_comments: Sequence[str] = ()  # what people wrote on the card, newest first
    constrained: bool = False  # the server is asked for exactly one JSON action per answer

    @property
    def reviewing(self) -> bool:
        return self.purpose == "review" or (not self.purpose and self.can_finalize)


@dataclass(frozen=True)
class CompiledPrompt:
    messages: list[dict[str, str]]
    tools: list[dict[str, Any]] = field(default_factory=list)

    @property
    def system(self) -> str:
        return self.messages[0]["content"]

    @property
    def user(self) -> str:
        return self.messages[1]["content"]


def compile_prompt(context: PromptContext) -> CompiledPrompt:
    """The system and user messages (and native tool specs) for one turn of `context.role_name` on a card."""
    tools = _known_tools(context.allowed_tools)
    messages = [
        {"role": "system", "content": _system_text(context, tools)},
        {"role": "user", "content": _user_text(context)},
    ]
    specs = tool_specs(tools) if context.native_tools else []
    return CompiledPrompt(messages=messages, tools=specs)


def tool_specs(tools: Sequence[str]) -> list[dict[str, Any]]:
    """OpenAI-style function specs for the given tools (unknown names are skipped), in the order given."""
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": TOOL_DESCRIPTIONS[name],
                "parameters": json.loads(json.dumps(TOOL_SCHEMAS[name])),
            },
        }
        for name in _known_tools(tools)
    ]


def verification_word(latest_verification: str | None) -> str:
    """The ORKET-VERIFICATION marker value: none, passed, failed or other."""
    if latest_verification is None or not latest_verification.strip():
        return "none"
    first = latest_verification.strip().split()[0].strip(".:,;!").lower()
    if first in ("passed", "pass", "ok", "success", "succeeded"):
        return "passed"
    if first in ("failed", "fail", "error", "failure"):
        return "failed"
    return "other"


# ---------------------------------------------------------------------------------------------------------------


def _known_tools(tools: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for name in tools:
        if name in TOOL_SCHEMAS and name not in seen:
            seen.append(name)
    return seen


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _bullets(items: Sequence[str]) -> list[str]:
    return [f"- {_one_line(item)}" for item in items if str(item).strip()]


def _system_text(ctx: PromptContext, tools: list[str]) -> str:
    seat = ctx.seat or "unassigned"
    lines = [
        f"ORKET-ROLE: {_one_line(ctx.role_name)}",
        f"ORKET-PURPOSE: {'review' if ctx.reviewing else 'work'}",
        f"ORKET-SEAT: {_one_line(seat)}",
        f"ORKET-GOVERNANCE: {'on' if ctx.governance_on else 'off'}",
        f"ORKET-CAN-FINALIZE: {'yes' if ctx.can_finalize else 'no'}",
        "",
        f"You are the {seat} seat of an Orket agent team, acting in the {ctx.role_name} role. You work one card of "
        "a kanban board at a time, only through the tools listed below.",
    ]
    if ctx.role_intent.strip():
        lines += ["", "## Intent", ctx.role_intent.strip()]
    if any(str(r).strip() for r in ctx.responsibilities):
        lines += ["", "## Responsibilities", *_bullets(ctx.responsibilities)]
    constraints = list(ctx.role_constraints)
    if ctx.can_finalize:
        constraints.append(
            "You may move a card to done, but only when its verification passes and its acceptance criteria are met, "
            "and never for work your own seat did."
        )
    else:
        constraints.append("You cannot move a card to done; the finalizing seat decides that after review.")
    constraints.append(f"Never write or delete files under {VERIFICATION_FOLDER}/ (the verification fixtures).")
    lines += ["", "## Constraints", *_bullets(constraints)]
    if ctx.governance_on:
        folders = ", ".join(sorted(COMPONENT_FOLDERS))
        lines += [
            "",
            "## Architecture rules (governance is on)",
            f"Every file you write must sit inside a recognised component folder: {folders}. "
            "The folder may be at any depth (for example services/billing.py or src/tests/test_billing.py). "
            "A write anywhere else is refused.",
        ]
    lines += ["", "## Card protocol", *_protocol(ctx, tools)]
    lines += ["", "## Tools", *_tool_text(ctx, tools)]
    lines += ["", "## Output format", *_dialect_text(ctx)]
    if ctx.ethos.strip():
        lines += ["", "## Ethos", ctx.ethos.strip()]
    return "\n".join(lines).rstrip() + "\n"


def _protocol(ctx: PromptContext, tools: list[str]) -> list[str]:
    steps: list[str] = []
    if "get_card_context" in tools:
        steps.append("Read the card context first (get_card_context) and the card below before acting.")
    else:
        steps.append("Read the card below before acting.")
    if "add_comment" in tools:
        steps.append("Report through comments on the card (add_comment): what you did, decided or found.")
    if "add_note" in tools:
        steps.append('Leave notes for other seats with add_note (to_seat: a seat name or "all").')
    if "update_card_status" in tools:
        steps.append(
            "Change the card's status only with update_card_status; blocked and waiting_for_developer need a "
            "wait_reason (resource, dependency, review or input)."
        )
        if ctx.reviewing:
            steps.append(
                "After review: done when the work is verified and complete, otherwise in_progress with a reason "
                "that says exactly what must change."
            )
        else:
            steps.append("When your work on the card is complete, move it to code_review.")
    if "finish_turn" in tools:
        steps.append("When you have done what you can in this turn, call finish_turn with a summary.")
    steps.append("A refused tool call is not executed; read why it was refused and change course, do not repeat it.")
    return [f"{i}. {step}" for i, step in enumerate(steps, 1)]


STEP_LOOP_TEXT = (
    "You work in steps. After each answer, Orket runs your tool calls and shows you their results (a message "
    "starting with ORKET-OBSERVATION, or tool messages); only then do you answer again. Read files before you "
    "change them, check the results you are shown, and correct course when a call fails or is refused. Your turn "
    "ends when you change the card's status or call finish_turn."
)


def _tool_text(ctx: PromptContext, tools: list[str]) -> list[str]:
    if not tools:
        return ["You have no tools for this card; answer in prose."]
    if ctx.native_tools and not ctx.constrained:
        return [
            STEP_LOOP_TEXT,
            "Call tools through the tool-calling interface (the functions provided with this request): "
            + ", ".join(tools)
            + ".",
        ]
    if ctx.constrained:
        opening = (
            'Each answer is exactly one JSON object {"tool": "<name>", "args": {...}}: one tool call, nothing '
            "else. Available tools:"
        )
    else:
        opening = (
            'To call a tool, write a JSON object {"tool": "<name>", "args": {...}} in a ```json fenced block. '
            "You may make several calls in one answer, one object per call; they run in order. Available tools:"
        )
    lines = [STEP_LOOP_TEXT, opening]
    lines += [f"- {tool_signature(name)}: {TOOL_DESCRIPTIONS[name]}" for name in tools]
    lines.append("An argument marked ? may be left out. Paths are relative to the workspace, with forward slashes.")
    return lines


def tool_signature(name: str) -> str:
    """A compact form of a tool's arguments, e.g. `update_card_status(status: ready|..., reason?: text)`;
    small contexts cannot afford the whole JSON schema of every tool."""
    schema = TOOL_SCHEMAS[name]
    parts = []
    for key, prop in schema["properties"].items():
        mark = "" if key in schema["required"] else "?"
        kind = "|".join(prop["enum"]) if "enum" in prop else _KIND_WORDS.get(prop.get("type", ""), "value")
        if prop.get("type") == "array" and prop.get("items", {}).get("type") == "string":
            kind = "list of text"
        parts.append(f"{key}{mark}: {kind}")
    return f"{name}({', '.join(parts)})"


_KIND_WORDS = {"string": "text", "boolean": "true|false", "integer": "number", "array": "list of card ids"}


def _dialect_text(ctx: PromptContext) -> list[str]:
    dialect = ctx.dialect or Dialect()
    fmt = dialect.output_format
    if ctx.constrained:
        text = "Answer with the JSON object of one tool call only."
    elif ctx.native_tools:
        text = "Use native tool calls for actions; keep any prose short."
    elif fmt == "text":
        text = "Write short prose; every action is still a JSON tool call as described above."
    else:
        text = "Answer with a sentence of explanation and your JSON tool calls; nothing else."
    lines = [f"Model family: {_one_line(dialect.model_family)}; format: {_one_line(fmt)}.", text]
    lines += _bullets(dialect.constraints)
    if dialect.guardrail.strip():
        lines.append(f"Guardrail: {dialect.guardrail.strip()}")
    return lines


def _dependency(item: DependencyOutcome | tuple[Any, str, str, str]) -> DependencyOutcome:
    if isinstance(item, DependencyOutcome):
        return item
    card_id, title, status, summary = item
    return DependencyOutcome(card_id, title, status, summary)


def _user_text(ctx: PromptContext) -> str:
    card = ctx.card
    labels = [_one_line(label) for label in card.labels if str(label).strip()]
    feedback = [str(item).strip() for item in ctx.review_feedback if str(item).strip()]
    lines = [
        f"ORKET-CARD: {_one_line(card.id)}",
        f"ORKET-CARD-TITLE: {_one_line(card.title)}",
        f"ORKET-CARD-STATUS: {_one_line(card.status)}",
        f"ORKET-CARD-SEAT: {_one_line(card.seat)}",
        f"ORKET-LABELS: {', '.join(labels)}",
        f"ORKET-REVIEW-FEEDBACK: {len(feedback)}",
        f"ORKET-VERIFICATION: {verification_word(ctx.latest_verification)}",
        "",
        f"# Card {_one_line(card.id)}: {_one_line(card.title)}",
    ]
    if card.epic_name.strip():
        lines.append(f"Epic: {_one_line(card.epic_name)}")
    lines.append(f"Status: {_one_line(card.status)}")
    if card.seat:
        lines.append(f"Assigned seat: {_one_line(card.seat)}")
    lines.append(f"Labels: {', '.join(labels) if labels else '(none)'}")
    sections: list[tuple[str, str]] = [
        ("Description", card.description),
        ("Requirements", card.requirements),
        ("Acceptance criteria", card.acceptance_criteria),
    ]
    for title, body in sections:
        lines += ["", f"## {title}", body.strip() or "(none given)"]
    outcomes = [_dependency(item) for item in ctx.dependency_outcomes]
    if outcomes:
        lines += ["", "## Outcomes of the cards this card depends on"]
        for dep in outcomes:
            summary = f": {dep.summary.strip()}" if dep.summary.strip() else ""
            lines.append(f"- Card {_one_line(dep.card_id)} {_one_line(dep.title)!r} ({_one_line(dep.status)}){summary}")
    notes = [str(note).strip() for note in ctx.notes if str(note).strip()]
    if notes:
        lines += ["", "## Notes from other seats", *[f"- {note}" for note in notes]]
    comments = [str(comment).strip() for comment in ctx.people_comments if str(comment).strip()]
    if comments:
        lines += ["", "## Comments from people (newest first)", *[f"- {comment}" for comment in comments]]
        lines.append("People's comments are instructions from the team: follow them or say why not.")
    lines += ["", "## Latest verification", (ctx.latest_verification or "").strip() or "Not run yet."]
    lines += ["", "## Review feedback"]
    if feedback:
        lines += [f"{i}. {item}" for i, item in enumerate(feedback, 1)]
        lines.append("Address every item of this feedback before moving the card to code_review again.")
    else:
        lines.append("(none)")
    if ctx.reviewing and ctx.diff.strip():
        diff = ctx.diff
        cut = ""
        if len(diff) > MAX_PROMPT_DIFF_CHARS:
            cut = f"\n[diff cut at {MAX_PROMPT_DIFF_CHARS} characters of {len(diff)}]"
            diff = diff[:MAX_PROMPT_DIFF_CHARS]
        lines += ["", "## Changes on this card (diff against main)", "```diff", diff.rstrip("\n"), "```" + cut]
    lines += ["", "## Your task", _task(ctx)]
    return "\n".join(lines).rstrip() + "\n"


def _task(ctx: PromptContext) -> str:
    if ctx.reviewing:
        return (
            "Review this card: run the verification, compare the changes with the acceptance criteria, then move it "
            "to done or send it back to in_progress with precise feedback."
        )
    if ctx.review_feedback:
        return "Apply the review feedback above, report what changed, and move the card to code_review."
    return "Do this card's work as your role requires, report it in a comment, and move the card to code_review."
