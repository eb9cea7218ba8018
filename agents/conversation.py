"""The conversation of a turn after its first prompt: what the model answered at each step and what
its tool calls did, as the messages the model sees before its next step. Pure, no Django.

Calls the model made through native tool-call fields get one `tool` message each, carrying the
call's id. Calls written as JSON text get one user message per step, which starts with the marker
line `ORKET-OBSERVATION: step <n>` and holds a section per call:

    ORKET-CALL: 1 read_file executed
    <the result: a file's content as it is, anything else as JSON>

An answer with no call is followed by a reminder of the protocol (`ORKET-REMINDER: ...`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OBSERVATION_MARKER = "ORKET-OBSERVATION"
CALL_MARKER = "ORKET-CALL"
REMINDER_MARKER = "ORKET-REMINDER"
# One call's result is cut here before the prompt budget shortens older observations further.
MAX_RESULT_CHARS = 24_000
NOT_RUN = "not_run"
NEXT_STEP = (
    "Next: make your next call. Do not repeat a call that already did its work. When the card's work is "
    "done, hand it on with update_card_status (code_review) or end your turn with finish_turn."
)


@dataclass(frozen=True)
class StepRecord:
    """What the conversation needs of one stored step."""

    number: int
    answer: str
    native_calls: Sequence[Mapping[str, Any]] = ()  # {"id", "name", "arguments"} as the provider gave them
    calls: Sequence[Mapping[str, Any]] = ()  # the records of the calls, in the order they were parsed
    reminded: bool = False  # the answer made no call and the model was reminded of the protocol


def reminder_text(*, constrained: bool) -> str:
    how = (
        'exactly one JSON object {"tool": "<name>", "args": {...}}'
        if constrained
        else 'a JSON object {"tool": "<name>", "args": {...}} in a ```json block, or the tool-calling interface'
    )
    return (
        f"{REMINDER_MARKER}: your answer made no tool call, so nothing happened. Act only through tool calls: "
        f"write {how}. When the card's work is done, change its status with update_card_status or call "
        "finish_turn. Another answer without a call ends your turn."
    )


def result_text(record: Mapping[str, Any]) -> str:
    """What one call did, as the model reads it."""
    decision = record.get("decision", NOT_RUN)
    if decision == "refused":
        fix = f" What would work: {record['fix']}" if record.get("fix") else ""
        return f"REFUSED by rule {record.get('rule', '')}: {record.get('message', '')}{fix} The call was not run."
    if decision == "failed":
        return f"FAILED ({record.get('rule', 'tool_failed')}): {record.get('message', '')}"
    if decision == "rejected":
        return f"REJECTED: {record.get('message', '')}. The call was not run."
    if decision != "executed":
        return "NOT RUN: the turn stopped before this call."
    result = record.get("result")
    if isinstance(result, Mapping) and isinstance(result.get("content"), str):
        header = {key: value for key, value in result.items() if key != "content"}
        text = json.dumps(header, ensure_ascii=False) + "\n" + result["content"]
    elif isinstance(result, Mapping) and isinstance(result.get("diff"), str):
        text = result["diff"]
    else:
        text = json.dumps(result, ensure_ascii=False)
    return _cut(text, MAX_RESULT_CHARS)


def _short_values(arguments: Any, limit: int = 200) -> Any:
    """The call's arguments with long texts cut (the model wrote them; it needs only a reminder)."""
    if not isinstance(arguments, Mapping):
        return {}
    return {
        key: value if not isinstance(value, str) or len(value) <= limit else value[:limit] + " [...]"
        for key, value in arguments.items()
    }


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[cut by Orket: {limit:,} of {len(text):,} characters shown]"


def step_messages(step: StepRecord, *, constrained: bool = False) -> list[dict[str, Any]]:
    """The messages one finished step adds to the conversation."""
    if step.native_calls:
        return _native_messages(step)
    messages: list[dict[str, Any]] = [{"role": "assistant", "content": step.answer}]
    if step.reminded or not step.calls:
        messages.append({"role": "user", "content": reminder_text(constrained=constrained)})
        return messages
    lines = [f"{OBSERVATION_MARKER}: step {step.number}", f"The results of your {len(step.calls)} call(s), in order:"]
    for index, record in enumerate(step.calls, 1):
        decision = record.get("decision", NOT_RUN)
        arguments = json.dumps(_short_values(record.get("arguments", {})), ensure_ascii=False)
        lines += [
            "",
            f"{CALL_MARKER}: {index} {record.get('name', '')} {decision}",
            f"arguments: {arguments}",
        ]
        lines.append(result_text(record))
    lines += ["", NEXT_STEP]
    messages.append({"role": "user", "content": "\n".join(lines)})
    return messages


def _native_messages(step: StepRecord) -> list[dict[str, Any]]:
    calls = [
        {"id": str(call.get("id") or f"call_{step.number}_{i}"), "name": call.get("name", ""), "arguments": _args(call)}
        for i, call in enumerate(step.native_calls)
    ]
    messages: list[dict[str, Any]] = [{"role": "assistant", "content": step.answer, "tool_calls": calls}]
    for index, call in enumerate(calls):
        record = step.calls[index] if index < len(step.calls) else {}
        messages.append(
            {"role": "tool", "tool_call_id": call["id"], "name": call["name"], "content": result_text(record)}
        )
    return messages


def _args(call: Mapping[str, Any]) -> dict[str, Any]:
    arguments = call.get("arguments")
    return dict(arguments) if isinstance(arguments, Mapping) else {}
