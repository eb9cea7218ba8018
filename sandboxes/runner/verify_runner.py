"""Orket's verification runner: call the agents' code for each scenario and report JSON.

Standard library only, Python 3.11; no Django, nothing of Orket. It runs inside the isolation
(bubblewrap, a plain subprocess or a throwaway container) with the agents' workspace mounted
read-only:

    python3 -I verify_runner.py --workspace /workspace --scenarios /orket/scenarios.json
    python3 -I verify_runner.py --workspace /workspace --pytest

The scenarios file is {"module": "name" (optional), "timeout_seconds": n (optional),
"scenarios": [{"id": "...", "input": ...}, ...]}. For each scenario the runner calls
`verify_<id>(input)` when the module defines it, else `verify(input)`. The module is the one the
file names, else `verify.py` or `solution.py` at the top of the workspace.

Orket's worker writes the scenarios file with the inputs only and compares the outputs with the
expected values itself (`grade`), so code under test can neither read the expected answers nor
forge a pass. When a scenario carries `expected` (running this by hand), the runner grades too.

The report is one JSON object on standard output; anything the code under test prints goes to
standard error or into the scenario's captured `stdout`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from typing import Any

CONVENTION = ("verify", "solution")
MAX_OUTPUT_JSON = 256 * 1024
MAX_CAPTURED = 16 * 1024
MAX_ERROR = 4 * 1024
DEFAULT_SCENARIO_TIMEOUT = 10.0


class ScenarioTimeout(BaseException):
    """Raised in the scenario's code by the alarm; BaseException so `except Exception` does not swallow it."""


def _alarm(signum: int, frame: object) -> None:
    raise ScenarioTimeout


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[cut at {limit} characters]"


def _error_text(error: BaseException) -> str:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return _cap("".join(lines[-6:]).strip(), MAX_ERROR)


def plain(value: Any) -> tuple[Any, str]:
    """The value as plain JSON data (tuples become lists, str subclasses plain str), or (None, problem)."""
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as error:
        return None, f"the result is not JSON data: {type(value).__name__} ({error})"
    if len(text) > MAX_OUTPUT_JSON:
        return None, f"the result is larger than {MAX_OUTPUT_JSON // 1024} KB as JSON"
    return json.loads(text), ""


def same(output: Any, expected: Any) -> bool:
    """Equal as JSON data: booleans are not numbers, numbers compare with a tiny tolerance."""
    if isinstance(expected, bool) or isinstance(output, bool):
        return type(output) is type(expected) and output == expected
    if isinstance(expected, int | float) and isinstance(output, int | float):
        if isinstance(expected, float) or isinstance(output, float):
            if math.isnan(expected) or math.isnan(output):
                return math.isnan(expected) and math.isnan(output)
            return math.isclose(output, expected, rel_tol=1e-9, abs_tol=1e-12)
        return output == expected
    if isinstance(expected, dict):
        return (
            isinstance(output, dict)
            and set(output) == set(expected)
            and all(same(output[key], expected[key]) for key in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(output, list)
            and len(output) == len(expected)
            and all(same(a, b) for a, b in zip(output, expected, strict=True))
        )
    return type(output) is type(expected) and output == expected


def grade(result: dict[str, Any], expected: Any) -> dict[str, Any]:
    """Turn one raw scenario result into passed, failed or error against `expected`."""
    graded = dict(result)
    if result.get("status") == "error" or result.get("error"):
        graded["status"] = "error"
    elif same(result.get("output"), expected):
        graded["status"] = "passed"
    else:
        graded["status"] = "failed"
    graded["expected"] = expected
    return graded


def totals(results: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "error": 0, "total": len(results)}
    for result in results:
        status = result.get("status")
        if status in counts:
            counts[status] += 1
    return counts


def _find_module(workspace: str, named: str) -> str:
    if named:
        return named
    for name in CONVENTION:
        if os.path.isfile(os.path.join(workspace, f"{name}.py")) or os.path.isfile(
            os.path.join(workspace, name, "__init__.py")
        ):
            return name
    return ""


def run_scenarios(workspace: str, spec: dict[str, Any]) -> dict[str, Any]:
    scenarios = spec.get("scenarios") or []
    timeout = float(spec.get("timeout_seconds") or DEFAULT_SCENARIO_TIMEOUT)
    module_name = _find_module(workspace, str(spec.get("module") or ""))
    report: dict[str, Any] = {"orket_runner": 1, "module": module_name, "python": sys.version.split()[0]}
    results: list[dict[str, Any]] = []
    if not module_name:
        problem = "No module to verify: the fixture names none and the workspace has neither verify.py nor solution.py."
        report["import_error"] = problem
        results = [{"id": s.get("id"), "status": "error", "error": problem, "duration_ms": 0} for s in scenarios]
        report["scenarios"] = results
        return report
    sys.path.insert(0, workspace)
    signal.signal(signal.SIGALRM, _alarm)
    captured = io.StringIO()
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            module = importlib.import_module(module_name)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except ScenarioTimeout:
        module, problem = None, f"importing {module_name} took longer than {timeout:g} s"
    except BaseException as error:  # the code under test may raise anything, SystemExit included
        signal.setitimer(signal.ITIMER_REAL, 0)
        module, problem = None, f"importing {module_name} failed: {_error_text(error)}"
    report["import_output"] = _cap(captured.getvalue(), MAX_CAPTURED)
    if module is None:
        report["import_error"] = problem
        report["scenarios"] = [
            {"id": s.get("id"), "status": "error", "error": problem, "duration_ms": 0} for s in scenarios
        ]
        return report
    for scenario in scenarios:
        results.append(_run_one(module, module_name, scenario, timeout))
    if scenarios and all("expected" in s for s in scenarios):
        results = [grade(r, s["expected"]) for r, s in zip(results, scenarios, strict=True)]
        report["totals"] = totals(results)
    report["scenarios"] = results
    return report


def _run_one(module: Any, module_name: str, scenario: dict[str, Any], timeout: float) -> dict[str, Any]:
    scenario_id = str(scenario.get("id", ""))
    function = getattr(module, f"verify_{scenario_id}", None) or getattr(module, "verify", None)
    result: dict[str, Any] = {"id": scenario_id, "status": "ok", "output": None, "error": "", "duration_ms": 0}
    if not callable(function):
        result.update(status="error", error=f"{module_name} defines neither verify_{scenario_id}() nor verify().")
        return result
    captured = io.StringIO()
    started = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            output = function(scenario.get("input"))
        signal.setitimer(signal.ITIMER_REAL, 0)
        value, problem = plain(output)
        if problem:
            result.update(status="error", error=problem, output=_cap(repr(output), MAX_ERROR))
        else:
            result["output"] = value
    except ScenarioTimeout:
        result.update(status="error", error=f"timed out after {timeout:g} s")
    except MemoryError:
        signal.setitimer(signal.ITIMER_REAL, 0)
        result.update(status="error", error="ran out of memory (the memory limit was reached)")
    except BaseException as error:  # the code under test may raise anything, SystemExit included
        signal.setitimer(signal.ITIMER_REAL, 0)
        result.update(status="error", error=_error_text(error))
    result["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    result["stdout"] = _cap(captured.getvalue(), MAX_CAPTURED)
    return result


def _pytest_echoed(command: list[str], workspace: str, timeout: float) -> tuple[int | None, str]:
    """Run pytest, copying its output to standard error as it comes (Orket streams that live) and
    keeping the last of it; the exit code (None after the timeout) and the output kept."""
    process = subprocess.Popen(
        command, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    kept: list[str] = []
    size = 0

    def pump() -> None:
        nonlocal size
        assert process.stdout is not None
        for line in process.stdout:
            sys.stderr.write(line)
            sys.stderr.flush()
            kept.append(line)
            size += len(line)
            while size > MAX_CAPTURED * 8 and len(kept) > 1:
                size -= len(kept.pop(0))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        reader.join(timeout=2)
        return None, "".join(kept)
    reader.join(timeout=5)
    return process.returncode, "".join(kept)


def run_pytest(workspace: str, timeout: float) -> dict[str, Any]:
    report: dict[str, Any] = {"orket_runner": 1, "python": sys.version.split()[0]}
    if importlib.util.find_spec("pytest") is None:
        report.update(pytest_available=False, message="pytest is not installed in the isolation image; not run.")
        return report
    report["pytest_available"] = True
    junit = os.path.join(os.environ.get("TMPDIR", "/tmp"), "orket-junit.xml")  # noqa: S108 - the sandbox's /tmp
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junit-xml={junit}", workspace]
    exit_code, output = _pytest_echoed(command, workspace, timeout)
    if exit_code is None:
        report.update(exit_code=None, message=f"pytest took longer than {timeout:g} s")
        return report
    report["exit_code"] = exit_code
    report["output"] = _cap(output, MAX_CAPTURED * 4)
    report["echoed"] = True  # the output also went to standard error, line by line, as pytest wrote it
    tests: list[dict[str, Any]] = []
    try:
        tree = ET.parse(junit)  # noqa: S314 - written by pytest inside the sandbox; read here only
    except (OSError, ET.ParseError):
        tree = None
    if tree is not None:
        for case in tree.iter("testcase"):
            status = "passed"
            message = ""
            for child in case:
                if child.tag in ("failure", "error"):
                    status, message = ("failed" if child.tag == "failure" else "error"), child.get("message", "")
                elif child.tag == "skipped":
                    status, message = "skipped", child.get("message", "")
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            tests.append(
                {
                    "id": name,
                    "status": status,
                    "message": _cap(message, MAX_ERROR),
                    "duration_ms": round(float(case.get("time", 0) or 0) * 1000, 3),
                }
            )
    report["tests"] = tests[:1000]
    report["totals"] = {
        name: sum(1 for t in tests if t["status"] == name) for name in ("passed", "failed", "error", "skipped")
    }
    report["totals"]["total"] = len(tests)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--scenarios")
    parser.add_argument("--pytest", action="store_true")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--tag", default="", help="a label that shows which worker started it (ps); ignored")
    args = parser.parse_args(argv)
    # The report goes to a private copy of stdout; whatever the code under test writes to fd 1 lands on stderr.
    report_fd = os.dup(1)
    os.dup2(2, 1)
    if args.pytest:
        report = run_pytest(args.workspace, args.timeout)
    else:
        with open(args.scenarios, encoding="utf-8") as handle:
            spec = json.load(handle)
        report = run_scenarios(args.workspace, spec)
    with os.fdopen(report_fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
