"""Tool-call parsing: pure, no I/O, no Django, never executes anything.

Native tool-call fields (from the provider) win. Without them, the model's text is scanned for JSON values and
every object in one of the accepted shapes becomes a call:

    {"tool": "read_file", "args": {...}}
    {"name": "read_file", "arguments": {...}}            (arguments may be a JSON string; "parameters" accepted)
    {"function": {"name": "read_file", "arguments": ...}} (the OpenAI shape, with or without "type"/"id")

A list of such objects, or an object {"tool_calls": [...]}, counts too. Code fences, prose around the JSON
and several objects in one text are fine. Scanning decodes with a real JSON decoder at each candidate
position, so braces inside strings are handled, and a value once decoded is taken whole: JSON inside its
strings (a file's content, say) is content, never a call of its own. Reasoning blocks (<think>...</think> and
the like) are kept in the record but never parsed for calls; a reasoning tag inside a decoded JSON string is
content too, so a file whose content mentions <think> is written as it is.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_INPUT_CHARS = 1024 * 1024
MAX_CALLS = 50
MAX_NAME_LENGTH = 128
# Work limits for hostile input: characters examined by failed decodes, and decodes nested too deep. Past
# either, the rest of the text is not scanned and a problem says so.
MAX_FAILED_SCAN_CHARS = 4 * MAX_INPUT_CHARS
MAX_FAILED_DECODES = 50_000
MAX_TOO_DEEP = 100
# The decoder works on a copy of the text starting at most this far before the candidate, because a decode
# error costs time proportional to its offset in the string it was given.
_WINDOW_SLACK = 8192

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# A JSON object or a list of objects starts here.
_CANDIDATE = re.compile(r"\{\s*\"|\[\s*\{\s*\"")
_REASONING_TAGS = ("think", "thinking", "reasoning", "thought")
_REASONING_TAG = re.compile(r"<(?P<close>/?)(?P<tag>" + "|".join(_REASONING_TAGS) + r")>", re.IGNORECASE)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]
    source: str  # "native" or "text"
    id: str | None = None
    span: tuple[int, int] | None = None  # where in the text the call's JSON was found


@dataclass(frozen=True)
class ParseProblem:
    message: str
    snippet: str = ""
    span: tuple[int, int] | None = None


@dataclass
class ParseResult:
    calls: list[ParsedCall] = field(default_factory=list)
    problems: list[ParseProblem] = field(default_factory=list)

    @property
    def problem_messages(self) -> list[str]:
        return [p.message for p in self.problems]


def parse_tool_calls(text: str | None, native: Iterable[Any] | None = None) -> ParseResult:
    """The tool calls of one model answer.

    `native` holds the provider's tool calls (ToolCall objects with name/arguments/id/error, or dicts in the
    Ollama or OpenAI shape); when it has any, the text is not scanned.
    """
    result = ParseResult()
    native_items = list(native or [])
    if native_items:
        _parse_native(native_items, result)
        return result
    _parse_text(text or "", result)
    return result


def strip_reasoning(text: str) -> str:
    """Blank out reasoning blocks, keeping every other character at its offset.

    Handles <think>...</think> (and thinking/reasoning/thought), an unclosed <think> running to the end, and a
    lone </think> with everything before it (models whose template opens the block in the prompt).
    """
    return _blank(text, _reasoning_regions(text, ()))


# ---------------------------------------------------------------------------------------------------------------


def _parse_native(items: list[Any], result: ParseResult) -> None:
    for position, item in enumerate(items):
        if len(result.calls) >= MAX_CALLS:
            result.problems.append(ParseProblem(f"more than {MAX_CALLS} tool calls; the rest were ignored"))
            return
        if isinstance(item, Mapping):
            shape = _call_shape(item)
            if shape is None:
                result.problems.append(ParseProblem("a native tool call has no name", _snippet(item)))
                continue
            name, raw_args, call_id = shape
            _add_call(result, name, raw_args, "native", call_id, None, item)
            continue
        name = getattr(item, "name", None)
        if name is None:
            result.problems.append(ParseProblem(f"native tool call {position} is not a call", repr(item)[:200]))
            continue
        error = getattr(item, "error", None)
        if error:
            raw = getattr(item, "raw_arguments", None)
            result.problems.append(ParseProblem(f"tool call '{name}': {error}", str(raw or "")[:200]))
            continue
        _add_call(result, name, getattr(item, "arguments", {}), "native", getattr(item, "id", None), None, item)


def _parse_text(text: str, result: ParseResult) -> None:
    if len(text) > MAX_INPUT_CHARS:
        result.problems.append(
            ParseProblem(f"the answer is longer than {MAX_INPUT_CHARS} characters; only the start was scanned")
        )
        text = text[:MAX_INPUT_CHARS]
    scan = _scan_json(text)
    regions = _reasoning_regions(text, [span for _, span in scan.values])
    for problem in scan.problems:
        if problem.span is None or not _inside(problem.span[0], regions):
            result.problems.append(problem)
    for value, span in scan.values:
        if _inside(span[0], regions):
            continue
        if not _take_value(value, span, result):
            return


@dataclass
class _Scan:
    values: list[tuple[Any, tuple[int, int]]] = field(default_factory=list)
    problems: list[ParseProblem] = field(default_factory=list)


def _scan_json(text: str) -> _Scan:
    """Every JSON object or list of objects in `text`, outermost only, with where it was found."""
    scan = _Scan()
    position = 0
    failed_chars = 0
    failed = 0
    too_deep = 0
    base, doc = 0, text
    while True:
        match = _CANDIDATE.search(text, position)
        if match is None:
            return scan
        start = match.start()
        if start - base > _WINDOW_SLACK:
            base, doc = start, text[start:]
        try:
            value, end = _DECODER.raw_decode(doc, start - base)
            end += base
        except json.JSONDecodeError as exc:
            failed += 1
            failed_chars += max(exc.pos + base - start, 1)
            if failed_chars > MAX_FAILED_SCAN_CHARS or failed > MAX_FAILED_DECODES:
                scan.problems.append(ParseProblem("too much malformed JSON; the rest of the answer was not scanned"))
                return scan
            position = start + 1
            continue
        except RecursionError:
            # Nesting deeper than the decoder allows is junk, and so is every candidate inside it on this line.
            too_deep += 1
            if too_deep == 1:
                scan.problems.append(
                    ParseProblem("JSON nested too deeply was skipped", text[start : start + 80], (start, start + 1))
                )
            if too_deep > MAX_TOO_DEEP:
                scan.problems.append(ParseProblem("JSON nested too deeply; the rest of the answer was not scanned"))
                return scan
            newline = text.find("\n", start)
            position = len(text) if newline < 0 else newline + 1
            continue
        position = end
        scan.values.append((value, (start, end)))


def _reasoning_regions(text: str, protected: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Where the reasoning is: blocks from an opening tag to its closing one (or the end), and everything up to
    the last closing tag that closes nothing. Tags inside `protected` spans (decoded JSON) are content."""
    regions: list[tuple[int, int]] = []
    open_tag: str | None = None
    open_at = 0
    lone_close_end = 0
    for match in _REASONING_TAG.finditer(text):
        if _inside(match.start(), protected):
            continue
        tag, closing = match.group("tag").lower(), bool(match.group("close"))
        if open_tag is None and not closing:
            open_tag, open_at = tag, match.start()
        elif open_tag is None:
            lone_close_end = match.end()
        elif closing and tag == open_tag:
            regions.append((open_at, match.end()))
            open_tag = None
    if open_tag is not None:
        regions.append((open_at, len(text)))
    if lone_close_end:
        regions = [(0, lone_close_end)] + [(start, end) for start, end in regions if end > lone_close_end]
    return regions


def _inside(position: int, regions: Sequence[tuple[int, int]]) -> bool:
    """Whether `position` is in one of `regions` (sorted, not overlapping)."""
    at = bisect.bisect_right(regions, position, key=lambda region: region[0]) - 1
    return at >= 0 and regions[at][0] <= position < regions[at][1]


def _blank(text: str, regions: Sequence[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in regions:
        chars[start:end] = re.sub(r"[^\n]", " ", text[start:end])
    return "".join(chars)


def _take_value(value: Any, span: tuple[int, int], result: ParseResult) -> bool:
    """Add the calls in one decoded JSON value. Returns False once the call limit is reached."""
    if isinstance(value, Mapping) and isinstance(value.get("tool_calls"), list) and _call_shape(value) is None:
        value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, Mapping):
            continue
        shape = _call_shape(item)
        if shape is None:
            continue
        if len(result.calls) >= MAX_CALLS:
            result.problems.append(ParseProblem(f"more than {MAX_CALLS} tool calls; the rest were ignored"))
            return False
        name, raw_args, call_id = shape
        _add_call(result, name, raw_args, "text", call_id, span, item)
    return True


_MISSING = object()


def _call_shape(obj: Mapping[str, Any]) -> tuple[Any, Any, str | None] | None:
    """(name, raw arguments, id) when `obj` has one of the accepted call shapes, else None."""
    call_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    fn = obj.get("function")
    if isinstance(fn, Mapping) and "name" in fn:
        return fn["name"], fn.get("arguments", fn.get("parameters", {})), call_id
    if "tool" in obj and (isinstance(obj["tool"], str) or "args" in obj or "arguments" in obj):
        return obj["tool"], _first(obj, "args", "arguments", "parameters", default={}), call_id
    if "name" in obj:
        raw = _first(obj, "arguments", "parameters", default=_MISSING)
        if raw is not _MISSING:
            return obj["name"], raw, call_id
    return None


def _first(obj: Mapping[str, Any], *keys: str, default: Any) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return default


def _add_call(
    result: ParseResult,
    name: Any,
    raw_args: Any,
    source: str,
    call_id: str | None,
    span: tuple[int, int] | None,
    original: Any,
) -> None:
    snippet = _snippet(original)
    if not isinstance(name, str) or not name.strip():
        result.problems.append(ParseProblem("a tool call's name is not a non-empty string", snippet, span))
        return
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        result.problems.append(ParseProblem(f"tool name {name[:MAX_NAME_LENGTH]!r} is not a valid name", snippet, span))
        return
    arguments: Any = raw_args
    if raw_args is None:
        arguments = {}
    elif isinstance(raw_args, str):
        if not raw_args.strip():
            arguments = {}
        else:
            try:
                arguments = json.loads(raw_args)
            except (ValueError, RecursionError) as exc:
                result.problems.append(
                    ParseProblem(f"tool call '{name}': arguments are not valid JSON ({exc})", snippet, span)
                )
                return
    if not isinstance(arguments, dict):
        kind = type(arguments).__name__
        result.problems.append(
            ParseProblem(f"tool call '{name}': arguments must be a JSON object, not {kind}", snippet, span)
        )
        return
    result.calls.append(ParsedCall(name=name, arguments=arguments, source=source, id=call_id, span=span))


def _snippet(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text[:200]
