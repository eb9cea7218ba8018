"""Fitting a turn's conversation into the model's context window: pure, no Django, no I/O.

    budget = budget_for(context_size=2048, max_tokens=256)            # what the prompt may use
    count = counter(chars_per_token(fixed_text, counted))              # or counter() for the default estimate
    fitted = fit_conversation(compiled.messages, history, budget_tokens=budget, count=count,
                              reserved_tokens=tools_tokens(compiled.tools, count))
    fitted.messages  # fixed parts whole, then the history (shortened or with old steps omitted) within budget

The fixed parts (system message and card message) are kept byte for byte; when they alone do not fit,
PromptTooLarge names the sizes. The history is fitted in this order, stopping as soon as it fits:

1. an observation bigger than half of the room left after the fixed parts is cut to that half, keeping its
   head and tail (a long file), even in the newest step;
2. older observations are shortened, oldest first;
3. older assistant answers are shortened (their text, and long string arguments of their tool calls);
4. the oldest whole steps are replaced by one user message listing the calls they made;
5. the newest step itself is shortened, largest message first.
Room left over at the end goes back to the newest step's shortened messages.

A step is an assistant message with every message after it up to the next assistant message (its tool
messages, or its JSON-text observation, or a reminder). Steps are kept or omitted whole, so a tool message
always stays right after the assistant message holding its tool_call_id, and no tool message starts the
history. Every shortened text carries a marker starting with SHORTENED_MARKER.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from agents.toolcalls import parse_tool_calls

TokenCounter = Callable[[str], int]

# Bytes of UTF-8 per token assumed when nothing better is known; real tokenizers give about 3.5 to 4.5 for
# English and code, so this overestimates.
DEFAULT_CHARS_PER_TOKEN = 3.0
# What a calibrated ratio is multiplied by, and the range it is kept in.
CALIBRATION_SAFETY = 0.9
CALIBRATED_RANGE = (1.0, 4.0)
# Role, separators and the chat template's special tokens around each message.
MESSAGE_OVERHEAD_TOKENS = 4
# The room that must be left after the fixed parts for the conversation to be of any use.
NEWEST_RESERVE_TOKENS = 64
SAFETY_MARGIN_MIN_TOKENS = 32
SAFETY_MARGIN_SHARE = 0.03
# What older observations and answers are cut to (at most) when the conversation does not fit.
OLD_OBSERVATION_TOKENS = 96
OLD_ANSWER_TOKENS = 96
# Longer string arguments of an older answer's tool calls are cut to about this many tokens.
OLD_ARGUMENT_TOKENS = 32
# A summary of omitted steps bigger than this share of the room lists call counts, or only the step numbers.
SUMMARY_SHARE = 0.25
SUMMARY_LINE_CHARS = 200
SUMMARY_VALUE_CHARS = 40

SHORTENED_MARKER = "[shortened by Orket:"
OBSERVATION_PREFIX = "ORKET-OBSERVATION:"
# A cut moves to a line break when that drops at most this many characters.
_SNAP_CHARS = 160
_READ_AGAIN = "call read_file again for the rest"
_CALL_AGAIN = "repeat the call for the rest"
_OWN_ANSWER = "your own earlier answer"
_ARGUMENT = "an argument of your earlier call"


class PromptTooLarge(Exception):
    """The prompt cannot be made to fit the model's context; the message names the sizes."""

    def __init__(self, message: str, *, needed_tokens: int | None = None, allowed_tokens: int | None = None):
        super().__init__(message)
        self.needed_tokens = needed_tokens
        self.allowed_tokens = allowed_tokens

    def with_profile(self, name: str) -> PromptTooLarge:
        """The same error with the model profile's name in front."""
        return PromptTooLarge(
            f'model profile "{name}": {self}', needed_tokens=self.needed_tokens, allowed_tokens=self.allowed_tokens
        )


@dataclass(frozen=True)
class FittedPrompt:
    messages: list[dict[str, Any]]
    tokens: int  # the whole prompt by the counter used, reserved tokens included
    shortened: int  # messages of the history that were shortened
    omitted_steps: int
    fixed_tokens: int  # the fixed messages plus the reserved tokens
    budget_tokens: int


# ---------------------------------------------------------------------------------------------------------------
# Counting


def estimate_tokens(text: str, chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> int:
    """A conservative token count: UTF-8 bytes divided by `chars_per_token`, rounded up."""
    if chars_per_token <= 0:
        raise ValueError(f"chars_per_token must be positive, not {chars_per_token}")
    return math.ceil(len(text.encode("utf-8", "surrogatepass")) / chars_per_token)


def counter(chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> TokenCounter:
    """estimate_tokens with a fixed ratio, as fit_conversation's `count`."""
    if chars_per_token <= 0:
        raise ValueError(f"chars_per_token must be positive, not {chars_per_token}")
    return partial(estimate_tokens, chars_per_token=chars_per_token)


def chars_per_token(sample: str, counted: int) -> float:
    """The ratio for estimate_tokens from one real count of `sample` by the model's tokenizer.

    Measured in UTF-8 bytes per token (as estimate_tokens counts), already multiplied by CALIBRATION_SAFETY and
    kept within CALIBRATED_RANGE, so it can be used as it is.
    """
    size = len(sample.encode("utf-8", "surrogatepass"))
    if counted <= 0 or size == 0:
        raise ValueError("calibrating needs a non-empty sample and a positive token count")
    low, high = CALIBRATED_RANGE
    return min(high, max(low, size / counted * CALIBRATION_SAFETY))


def message_cost(message: Mapping[str, Any], count: TokenCounter) -> int:
    """Tokens one chat message takes: its content, tool calls, tool_call_id and name, plus the overhead."""
    total = MESSAGE_OVERHEAD_TOKENS + count(_content_text(message.get("content")))
    calls = message.get("tool_calls")
    if calls:
        total += count(_json([_plain(call) for call in calls]))
    for key in ("tool_call_id", "name"):
        value = message.get(key)
        if value:
            total += count(str(value))
    return total


def message_tokens(message: Mapping[str, Any], chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> int:
    """message_cost with the estimate."""
    return message_cost(message, counter(chars_per_token))


def conversation_tokens(messages: Sequence[Mapping[str, Any]], count: TokenCounter) -> int:
    return sum(message_cost(message, count) for message in messages)


def tools_tokens(tools: Sequence[Mapping[str, Any]], count: TokenCounter) -> int:
    """Tokens the native tool specs of a request take (servers put them into the prompt)."""
    return count(_json(list(tools))) if tools else 0


def safety_margin(context_size: int) -> int:
    return max(SAFETY_MARGIN_MIN_TOKENS, math.ceil(context_size * SAFETY_MARGIN_SHARE))


def budget_for(context_size: int, max_tokens: int) -> int:
    """Tokens the prompt may use: the context size minus the answer's max_tokens minus a safety margin."""
    if context_size <= 0:
        raise PromptTooLarge(f"the context size must be a positive number of tokens, not {context_size}")
    if max_tokens < 0:
        raise PromptTooLarge(f"the answer's max_tokens must not be negative, not {max_tokens}")
    if max_tokens >= context_size:
        raise PromptTooLarge(
            f"the answer's max_tokens ({max_tokens:,}) leaves no room for a prompt in a context of "
            f"{context_size:,} tokens",
            needed_tokens=max_tokens,
            allowed_tokens=context_size,
        )
    budget = context_size - max_tokens - safety_margin(context_size)
    if budget <= 0:
        raise PromptTooLarge(
            f"a context of {context_size:,} tokens minus the answer's max_tokens ({max_tokens:,}) and a safety "
            f"margin of {safety_margin(context_size):,} leaves no room for a prompt",
            allowed_tokens=budget,
        )
    return budget


# ---------------------------------------------------------------------------------------------------------------
# Shortening text


def shorten_card_fields(text: str, max_chars: int, *, hint: str = "the rest of this field is left out") -> str:
    """`text` cut to at most `max_chars` characters, keeping its head and tail around a visible marker.

    For the card's own long fields (description, requirements, acceptance criteria), before the prompt is built.
    """
    if len(text) <= max_chars:
        return text
    shorter = shorten_text(text, max_chars, len, hint=hint)
    return shorter if len(shorter) <= max_chars else text[: max(0, max_chars)]


def shorten_text(text: str, max_tokens: int, count: TokenCounter, *, hint: str = _CALL_AGAIN) -> str:
    """`text` cut to at most `max_tokens` by `count` (when the marker alone fits), keeping its head and tail.

    A first line starting with ORKET-OBSERVATION: is always kept. The marker says how many characters of how
    many are shown, and `hint` how to get the rest.
    """
    if count(text) <= max_tokens:
        return text
    low, high = 0, max(0, len(text) - 1)
    best = _cut(text, 0, hint)
    while low <= high:
        middle = (low + high) // 2
        candidate = _cut(text, middle, hint)
        if count(candidate) <= max_tokens:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def _cut(text: str, kept: int, hint: str) -> str:
    """`text` with about `kept` of its characters shown: two thirds from the head, one third from the tail."""
    prefix = ""
    if text.startswith(OBSERVATION_PREFIX):
        end = text.find("\n")
        prefix = text if end < 0 else text[: end + 1]
    body = text[len(prefix) :]
    kept = min(max(0, kept - len(prefix)), len(body))
    tail_len = kept // 3
    head = body[: kept - tail_len]
    tail = body[len(body) - tail_len :] if tail_len else ""
    line_end = head.rfind("\n")
    if line_end >= 0 and 0 < len(head) - line_end - 1 <= _SNAP_CHARS:
        head = head[: line_end + 1]
    line_start = tail.find("\n")
    if 0 <= line_start < _SNAP_CHARS:
        tail = tail[line_start + 1 :]
    shown = len(prefix) + len(head) + len(tail)
    marker = f"{SHORTENED_MARKER} {shown:,} of {len(text):,} characters shown; {hint}]"
    before = prefix + head
    if before and not before.endswith("\n"):
        before += "\n"
    return before + marker + ("\n" + tail if tail else "")


# ---------------------------------------------------------------------------------------------------------------
# Fitting


def fit_conversation(
    fixed: Sequence[dict[str, Any]],
    history: Sequence[dict[str, Any]],
    *,
    budget_tokens: int,
    count: TokenCounter,
    reserved_tokens: int = 0,
    context_size: int | None = None,
    max_tokens: int | None = None,
) -> FittedPrompt:
    """The fixed messages whole, then as much of the history as fits in `budget_tokens` by `count`.

    `reserved_tokens` is what the request takes outside the messages (tools_tokens of native tool specs).
    `context_size` and `max_tokens` only make a PromptTooLarge message more precise.
    Raises ValueError for a history that breaks the tool-calling structure (a tool message that does not
    answer a call of the assistant message before it).
    """
    fixed_tokens = conversation_tokens(fixed, count) + reserved_tokens
    if fixed_tokens + NEWEST_RESERVE_TOKENS > budget_tokens:
        raise PromptTooLarge(
            f"the fixed part of the prompt needs {fixed_tokens:,} tokens (and at least {NEWEST_RESERVE_TOKENS} "
            f"more for the conversation) but {_allowance(budget_tokens, context_size, max_tokens)}",
            needed_tokens=fixed_tokens + NEWEST_RESERVE_TOKENS,
            allowed_tokens=budget_tokens,
        )
    fitter = _Fitter(_steps(history, count), budget_tokens - fixed_tokens, count)
    fitter.fit()
    if fitter.total() > fitter.room:
        raise PromptTooLarge(
            f"the newest step of the conversation still needs {fitter.total():,} tokens after shortening, and "
            f"the fixed part of the prompt {fixed_tokens:,}, but {_allowance(budget_tokens, context_size, max_tokens)}",
            needed_tokens=fixed_tokens + fitter.total(),
            allowed_tokens=budget_tokens,
        )
    history_messages = fitter.messages()
    return FittedPrompt(
        messages=[*fixed, *history_messages],
        tokens=fixed_tokens + fitter.total(),
        shortened=fitter.shortened(),
        omitted_steps=fitter.omitted_steps(),
        fixed_tokens=fixed_tokens,
        budget_tokens=budget_tokens,
    )


def _allowance(budget: int, context_size: int | None, max_tokens: int | None) -> str:
    if context_size is None or max_tokens is None:
        return f"the prompt may use only {budget:,} tokens"
    margin = context_size - max_tokens - budget
    return (
        f"the profile's context allows {budget:,} (context size {context_size:,} minus the answer's max_tokens "
        f"{max_tokens:,} and a safety margin of {margin:,})"
    )


@dataclass
class _Message:
    original: dict[str, Any]
    current: dict[str, Any]
    cost: int

    @property
    def is_answer(self) -> bool:
        return self.original.get("role") == "assistant"

    @property
    def shortened(self) -> bool:
        return self.current is not self.original


@dataclass
class _Step:
    number: int | None  # None for messages before the first assistant message
    messages: list[_Message]

    @property
    def cost(self) -> int:
        return sum(message.cost for message in self.messages)


def _steps(history: Sequence[dict[str, Any]], count: TokenCounter) -> list[_Step]:
    steps: list[_Step] = []
    answers = 0
    for position, message in enumerate(history):
        if message.get("role") == "assistant":
            answers += 1
            steps.append(_Step(answers, []))
        elif not steps:
            steps.append(_Step(None, []))
        if message.get("role") == "tool":
            _check_tool_message(message, steps[-1], position)
        steps[-1].messages.append(_Message(message, message, message_cost(message, count)))
    return steps


def _check_tool_message(message: Mapping[str, Any], step: _Step, position: int) -> None:
    answer = step.messages[0].original if step.messages else {}
    ids = {_plain(call).get("id") for call in answer.get("tool_calls") or []}
    if answer.get("role") != "assistant" or message.get("tool_call_id") not in ids:
        raise ValueError(
            f"history message {position} is a tool message whose tool_call_id {message.get('tool_call_id')!r} "
            "answers no call of the assistant message before it"
        )


class _Fitter:
    def __init__(self, steps: list[_Step], room: int, count: TokenCounter) -> None:
        self.steps = steps
        self.room = room
        self.count = count
        self.omitted: list[_Step] = []
        self.summary: dict[str, Any] | None = None
        self.summary_cost = 0

    def fit(self) -> None:
        if self.total() <= self.room or not self.steps:
            return
        half = self.room // 2
        for step in self.steps:
            for message in step.messages:
                if not message.is_answer and message.cost > half:
                    self._shrink(message, half)
        self._shorten_older(answers=False, floor=OLD_OBSERVATION_TOKENS)
        self._shorten_older(answers=True, floor=OLD_ANSWER_TOKENS)
        self._omit_oldest()
        self._shrink_newest()
        self._regrow_newest()

    def _shorten_older(self, *, answers: bool, floor: int) -> None:
        for step in self.steps[:-1]:
            for message in step.messages:
                if self.excess() <= 0:
                    return
                if message.is_answer == answers and message.cost > floor:
                    self._shrink(message, max(floor, message.cost - self.excess()))

    def _omit_oldest(self) -> None:
        while self.excess() > 0 and len(self.steps) > 1:
            self.omitted.append(self.steps.pop(0))
            for detail in ("calls", "counts", "none"):
                self.summary = {"role": "user", "content": _omission_text(self.omitted, detail=detail)}
                self.summary_cost = message_cost(self.summary, self.count)
                if self.summary_cost <= self.room * SUMMARY_SHARE:
                    break

    def _shrink_newest(self) -> None:
        tried: set[int] = set()
        while self.excess() > 0:
            candidates = [m for step in self.steps for m in step.messages if id(m) not in tried]
            if not candidates:
                return
            largest = max(candidates, key=lambda message: message.cost)
            tried.add(id(largest))
            self._shrink(largest, max(0, largest.cost - self.excess()))

    def _regrow_newest(self) -> None:
        """Give the room left over back to the newest step's shortened messages (a long file cut to half)."""
        for message in sorted(self.steps[-1].messages, key=lambda m: m.cost, reverse=True):
            if message.shortened and self.excess() < 0:
                self._shrink(message, message.cost - self.excess(), allow_growth=True)

    def _shrink(self, message: _Message, target: int, *, allow_growth: bool = False) -> None:
        if message.is_answer:
            smaller = _shrink_answer(message.original, target, self.count)
        else:
            smaller = _shrink_observation(message.original, target, self.count)
        if smaller == message.original:
            smaller = message.original
        cost = message_cost(smaller, self.count)
        if cost < message.cost or (allow_growth and cost <= target):
            message.current, message.cost = smaller, cost

    def excess(self) -> int:
        return self.total() - self.room

    def total(self) -> int:
        return self.summary_cost + sum(step.cost for step in self.steps)

    def messages(self) -> list[dict[str, Any]]:
        kept = [message.current for step in self.steps for message in step.messages]
        return [self.summary, *kept] if self.summary else kept

    def shortened(self) -> int:
        return sum(message.shortened for step in self.steps for message in step.messages)

    def omitted_steps(self) -> int:
        return sum(step.number is not None for step in self.omitted)


def _shrink_observation(original: dict[str, Any], target: int, count: TokenCounter) -> dict[str, Any]:
    content = _content_text(original.get("content"))
    rest = message_cost({**original, "content": ""}, count)
    hint = _READ_AGAIN if original.get("name") == "read_file" else _CALL_AGAIN
    return {**original, "content": shorten_text(content, max(0, target - rest), count, hint=hint)}


def _shrink_answer(original: dict[str, Any], target: int, count: TokenCounter) -> dict[str, Any]:
    """The answer's text shortened to fit `target`; when that is not enough, its long call arguments too."""
    content = _content_text(original.get("content"))
    message = dict(original)
    rest = message_cost({**message, "content": ""}, count)
    if rest > target and original.get("tool_calls"):
        message["tool_calls"] = [_shrink_call(call, count) for call in original["tool_calls"]]
        rest = message_cost({**message, "content": ""}, count)
    if content:
        message["content"] = shorten_text(content, max(0, target - rest), count, hint=_OWN_ANSWER)
    return message


def _shrink_call(call: Any, count: TokenCounter) -> Any:
    """A tool call with its long string arguments shortened; id and name untouched, arguments still JSON."""
    plain = _plain(call)
    nested = isinstance(plain.get("function"), Mapping)  # the OpenAI wire shape {"id", "function": {...}}
    holder: dict[str, Any] = dict(plain["function"]) if nested else plain
    arguments = holder.get("arguments")
    was_text = isinstance(arguments, str)
    if was_text:
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return call
    shorter = _shrink_value(arguments, count)
    if was_text:
        shorter = _json(shorter)
    if nested:
        return {**plain, "function": {**holder, "arguments": shorter}}
    if dataclasses.is_dataclass(call) and not isinstance(call, type):
        return dataclasses.replace(call, arguments=shorter)
    return {**plain, "arguments": shorter}


def _shrink_value(value: Any, count: TokenCounter) -> Any:
    if isinstance(value, str):
        return shorten_text(value, OLD_ARGUMENT_TOKENS, count, hint=_ARGUMENT)
    if isinstance(value, Mapping):
        return {key: _shrink_value(item, count) for key, item in value.items()}
    if isinstance(value, list):
        return [_shrink_value(item, count) for item in value]
    return value


# ---------------------------------------------------------------------------------------------------------------
# The summary of omitted steps


def _omission_text(steps: Sequence[_Step], *, detail: str) -> str:
    """The message standing for omitted steps; `detail` is "calls" (a line per step), "counts" or "none"."""
    numbers = [step.number for step in steps if step.number is not None]
    if not numbers:
        head = "[earlier messages omitted to fit the model's context"
    elif len(numbers) == 1:
        head = f"[step {numbers[0]} omitted to fit the model's context"
    else:
        head = f"[steps {numbers[0]}-{numbers[-1]} omitted to fit the model's context"
    calls = [(step.number, _calls_of(step)) for step in steps if step.number is not None]
    if not calls or detail == "none":
        return head + "]"
    if detail == "counts":
        tally = Counter(name for _, step_calls in calls for name, _ in step_calls)
        listed = ", ".join(f"{name} {n} time{'s' if n > 1 else ''}" for name, n in sorted(tally.items()))
        return f"{head}. Calls made: {listed or 'none'}]"
    lines = [f"{head}. Calls made:"]
    for number, step_calls in calls:
        described = ", ".join(f"{name}({args})" for name, args in step_calls) or "no tool call"
        line = f"step {number}: {described}"
        lines.append(line if len(line) <= SUMMARY_LINE_CHARS else line[: SUMMARY_LINE_CHARS - 3] + "...")
    return "\n".join(lines) + "]"


def _calls_of(step: _Step) -> list[tuple[str, str]]:
    answer = step.messages[0].original
    parsed = parse_tool_calls(_content_text(answer.get("content")), answer.get("tool_calls") or None)
    return [(call.name, _short_arguments(call.arguments)) for call in parsed.calls]


def _short_arguments(arguments: Mapping[str, Any]) -> str:
    parts = []
    for key, value in arguments.items():
        shown = _json(value)
        if len(shown) > SUMMARY_VALUE_CHARS:
            size = len(value) if isinstance(value, str | list | dict) else len(shown)
            shown = f"<{size:,} characters>" if isinstance(value, str) else f"<{size:,} items>"
        parts.append(f"{key}={shown}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else _json(content)


def _plain(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return dict(value) if isinstance(value, Mapping) else {"value": str(value)}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
