"""The one way Orket decodes JSON that comes from outside (API bodies, webhook payloads, imported
epics). Plain module, no Django.

Python's own `json.loads` accepts what Orket cannot store or send back: lone UTF-16 surrogates
("\\ud800", which no UTF-8 encoder accepts), NaN and Infinity (not JSON; PostgreSQL refuses them),
numbers like 1e999 that become infinity, integers of thousands of digits (int() refuses past 4,300
with a ValueError), nesting deep enough to exhaust the interpreter's recursion, and NUL characters
(PostgreSQL stores them in neither text nor jsonb). `loads` refuses each with `MalformedJSON`, whose
`code` says which.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
MAX_INTEGER_DIGITS = 40
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedJSON(ValueError):
    """`code` is "syntax" for text that is not JSON, otherwise what was refused in valid JSON."""

    def __init__(self, message: str, *, code: str = "syntax") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def has_lone_surrogate(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def replace_lone_surrogates(text: str) -> str:
    """Text that an UTF-8 encoder accepts: each lone surrogate becomes U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise MalformedJSON(f"An integer has more than {MAX_INTEGER_DIGITS} digits.", code="number_too_large")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise MalformedJSON(f"The number {text[:40]} is too large.", code="number_too_large")
    return value


def _constant(name: str) -> Any:
    raise MalformedJSON(f"{name} is not a JSON value.", code="syntax")


def _check_shape(value: Any) -> None:
    """Walk the decoded value without recursion: bounded depth, no lone surrogate or NUL in keys or strings."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if has_lone_surrogate(item):
                raise MalformedJSON("A string holds a lone surrogate (\\ud800-\\udfff).", code="invalid_unicode")
            if "\x00" in item:
                raise MalformedJSON("A string holds a NUL character (\\u0000).", code="invalid_unicode")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise MalformedJSON(f"The JSON is nested deeper than {MAX_DEPTH} levels.", code="too_deep")
        if isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        else:
            pending.extend((child, depth + 1) for child in item)


def loads(raw: bytes | str) -> Any:
    """The decoded value, or MalformedJSON saying what is wrong with it."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as error:
        raise MalformedJSON("The body is not UTF-8 text.", code="syntax") from error
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except RecursionError as error:
        raise MalformedJSON(f"The JSON is nested deeper than {MAX_DEPTH} levels.", code="too_deep") from error
    except json.JSONDecodeError as error:
        raise MalformedJSON(f"Malformed JSON: {error}", code="syntax") from error
    except MalformedJSON:
        raise
    except ValueError as error:  # int() past its digit limit, in a shape parse_int did not see
        raise MalformedJSON(f"Malformed JSON: {error}", code="syntax") from error
    _check_shape(value)
    return value
