"""Verification fixtures: their format and validation. Pure (no Django).

A fixture is a JSON object (or a bare list, taken as its scenarios):

    {
      "name": "parser",                  # optional, shown to people
      "module": "services.parser",       # optional: the module to verify; else verify.py or solution.py
      "timeout_seconds": 10,             # optional, per scenario, 0.1 to 300
      "service": "web",                  # optional: the sandbox service HTTP scenarios talk to
      "scenarios": [
        {"id": "adds", "description": "...", "input": [1, 2], "expected": 3},
        {"id": "health", "endpoint": "/healthz", "method": "GET", "payload": null,
         "expected_status": 200, "expected_output": {"ok": true}}
      ]
    }

A scenario with an `endpoint` is an HTTP scenario, run against a running sandbox; every other one
calls `verify_<id>(input)` or `verify(input)` in the agents' code and compares with `expected`.
Ids are Python identifiers and unique. Every problem is reported with its JSON path.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from orket_site import untrusted_json

MAX_SCENARIOS = 500
MAX_DESCRIPTION = 2_000
MAX_ENDPOINT = 2_000
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
TOP_KEYS = {"name", "description", "module", "timeout_seconds", "service", "scenarios"}
FUNCTION_KEYS = {"id", "description", "input", "expected"}
HTTP_KEYS = {"id", "description", "endpoint", "method", "payload", "headers", "expected_status", "expected_output"}
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_BAD_ENDPOINT = re.compile(r"[\x00-\x20\x7f\\]")


class FixtureInvalid(ValueError):
    """The fixture has problems; `problems` lists (JSON path, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        first_path, first_message = problems[0]
        count = len(problems)
        super().__init__(
            f"The fixture is not valid: {count} problem{'s' if count != 1 else ''}, the first at "
            f"{first_path}: {first_message}."
        )

    def as_list(self) -> list[dict[str, str]]:
        return [{"path": path, "message": message} for path, message in self.problems]


@dataclass(frozen=True)
class Fixture:
    name: str
    module: str
    timeout_seconds: float | None
    service: str
    scenarios: list[dict[str, Any]] = field(default_factory=list)
    http_scenarios: list[dict[str, Any]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.scenarios) + len(self.http_scenarios)

    def runner_spec(self) -> dict[str, Any]:
        """What the runner inside the isolation gets: the inputs, never the expected values."""
        spec: dict[str, Any] = {"scenarios": [{"id": s["id"], "input": s["input"]} for s in self.scenarios]}
        if self.module:
            spec["module"] = self.module
        if self.timeout_seconds is not None:
            spec["timeout_seconds"] = self.timeout_seconds
        return spec


def load_fixture(raw: bytes | str) -> Fixture:
    """Parse and validate fixture bytes; FixtureInvalid says what is wrong."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise FixtureInvalid([("$", f"is not UTF-8 text ({error.reason} at byte {error.start})")]) from error
    try:
        data = untrusted_json.loads(raw)
    except untrusted_json.MalformedJSON as error:
        raise FixtureInvalid([("$", f"is not acceptable JSON: {error.message}")]) from error
    return parse_fixture(data)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def parse_fixture(data: Any) -> Fixture:
    """Validate decoded JSON data as a fixture."""
    problems: list[tuple[str, str]] = []
    if isinstance(data, list):
        data = {"scenarios": data}
    if not isinstance(data, dict):
        raise FixtureInvalid([("$", f"must be an object with scenarios, not {_type_name(data)}")])
    for key in sorted(set(data) - TOP_KEYS, key=str):
        problems.append((f"$.{key}", f"is not a fixture field (use {', '.join(sorted(TOP_KEYS))})"))
    name = data.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        problems.append(("$.name", "must be a string of at most 200 characters"))
        name = ""
    module = data.get("module", "")
    if not isinstance(module, str) or (module and not _MODULE.match(module)):
        problems.append(("$.module", "must be a dotted Python module name such as services.parser"))
        module = ""
    elif module and any(keyword.iskeyword(part) for part in module.split(".")):
        problems.append(("$.module", "must not contain Python keywords"))
    timeout = data.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0.1 <= timeout <= 300
    ):
        problems.append(("$.timeout_seconds", "must be a number of seconds between 0.1 and 300"))
        timeout = None
    service = data.get("service", "")
    if not isinstance(service, str) or (service and not _SERVICE.match(service)):
        problems.append(("$.service", "must be a sandbox service name (lowercase letters, digits, - and _)"))
        service = ""
    scenarios = data.get("scenarios")
    functions: list[dict[str, Any]] = []
    http: list[dict[str, Any]] = []
    if not isinstance(scenarios, list):
        problems.append(("$.scenarios", f"must be a list of scenarios, not {_type_name(scenarios)}"))
    elif not scenarios:
        problems.append(("$.scenarios", "is empty; a fixture needs at least one scenario"))
    elif len(scenarios) > MAX_SCENARIOS:
        problems.append(("$.scenarios", f"has {len(scenarios)} scenarios; at most {MAX_SCENARIOS} are allowed"))
    else:
        seen: set[str] = set()
        for index, scenario in enumerate(scenarios):
            checked = _scenario(scenario, f"$.scenarios[{index}]", seen, problems)
            if checked is not None:
                (http if "endpoint" in checked else functions).append(checked)
    if problems:
        raise FixtureInvalid(problems)
    return Fixture(
        name=name,
        module=module,
        timeout_seconds=float(timeout) if timeout is not None else None,
        service=service,
        scenarios=functions,
        http_scenarios=http,
    )


def _scenario(scenario: Any, path: str, seen: set[str], problems: list[tuple[str, str]]) -> dict[str, Any] | None:
    if not isinstance(scenario, dict):
        problems.append((path, f"must be an object, not {_type_name(scenario)}"))
        return None
    before = len(problems)
    is_http = "endpoint" in scenario
    allowed = HTTP_KEYS if is_http else FUNCTION_KEYS
    for key in sorted(set(scenario) - allowed, key=str):
        kind = "an HTTP scenario" if is_http else "a scenario"
        problems.append((f"{path}.{key}", f"is not a field of {kind} (use {', '.join(sorted(allowed))})"))
    scenario_id = scenario.get("id")
    if not isinstance(scenario_id, str) or not scenario_id.isidentifier() or keyword.iskeyword(scenario_id):
        problems.append((f"{path}.id", "must be a Python identifier such as adds_two_numbers"))
    elif len(scenario_id) > 100:
        problems.append((f"{path}.id", "must be at most 100 characters"))
    elif scenario_id in seen:
        problems.append((f"{path}.id", f"{scenario_id!r} is used by an earlier scenario; ids must be unique"))
    else:
        seen.add(scenario_id)
    description = scenario.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        problems.append((f"{path}.description", f"must be a string of at most {MAX_DESCRIPTION} characters"))
    if is_http:
        _http_fields(scenario, path, problems)
    else:
        for key in ("input", "expected"):
            if key not in scenario:
                problems.append((f"{path}.{key}", "is required (any JSON value, null included)"))
    if len(problems) > before:
        return None
    checked = dict(scenario)
    checked.setdefault("description", "")
    if is_http:
        checked["method"] = str(checked.get("method") or "GET").upper()
    return checked


def _http_fields(scenario: dict[str, Any], path: str, problems: list[tuple[str, str]]) -> None:
    endpoint = scenario.get("endpoint")
    if (
        not isinstance(endpoint, str)
        or not endpoint.startswith("/")
        or endpoint.startswith("//")
        or len(endpoint) > MAX_ENDPOINT
        or _BAD_ENDPOINT.search(endpoint)
    ):
        problems.append(
            (f"{path}.endpoint", "must be a path on the sandbox starting with / (such as /api/items?page=2), not a URL")
        )
    method = scenario.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        problems.append((f"{path}.method", f"must be one of {', '.join(HTTP_METHODS)}"))
    status = scenario.get("expected_status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599):
        problems.append((f"{path}.expected_status", "must be an HTTP status code between 100 and 599"))
    headers = scenario.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        problems.append((f"{path}.headers", "must be an object of header names to string values"))
    if "expected_status" not in scenario and "expected_output" not in scenario:
        problems.append((path, "an HTTP scenario needs expected_status, expected_output or both"))


def http_matches(expected: Any, status: int, body_text: str, body_json: Any, has_json: bool) -> tuple[bool, str]:
    """Whether a response meets an HTTP scenario's expected_output.

    A string must appear in the body; an object must be contained in the JSON body (its keys with
    equal values, recursively); any other value must equal the JSON body.
    """
    if isinstance(expected, str):
        return (expected in body_text, "" if expected in body_text else "the body does not contain the expected text")
    if not has_json:
        return False, "the body is not JSON"
    if _contains(body_json, expected):
        return True, ""
    return False, "the JSON body does not match the expected output"


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _contains(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_contains(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return actual == expected
