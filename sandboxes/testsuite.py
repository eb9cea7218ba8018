"""The test command of a checkout, the counts in a test run's output, and output cut to size. Pure: no Django.

    suite = suite_command(checkout, path="tests/test_x.py", args=["-k", "parser"])  # SuiteCommand or None
    counts = parse_counts(suite.tool, stdout + stderr)                              # SuiteCounts
    shown = cut_output(text, limit=64_000)                                          # head and tail, marked

`test_command` decides from stack detection (sandboxes.stacks: Python, Node, .NET) and from the marker
files stack detection does not know (go.mod, Cargo.toml, pom.xml); a folder holding only test_*.py
files is a Python project. The parsers read the summary each tool prints: pytest's last line, Jest and
Vitest's "Tests:", Mocha's "passing"/"failing", node --test's "# pass", `go test -v`'s "--- PASS",
`dotnet test`'s "Passed!/Failed!" line, Cargo's "test result:" lines and Maven's "Tests run:".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sandboxes.stacks import detect_stack

MAX_ARGS = 32
MAX_ARG_CHARS = 400
PYTHON_TEST_FILES = ("test_*.py", "*_test.py", "tests/test_*.py", "tests/*_test.py")


@dataclass(frozen=True)
class SuiteCommand:
    tool: str  # pytest, npm, go, dotnet, cargo, maven
    argv: tuple[str, ...]
    workdir: str  # relative to the checkout ("." for the top)
    why: str


@dataclass(frozen=True)
class SuiteCounts:
    passed: int | None = None
    failed: int | None = None
    errors: int | None = None
    skipped: int | None = None
    summary: str = ""  # the line the counts were read from

    @property
    def parsed(self) -> bool:
        return self.passed is not None or self.failed is not None


class BadSuiteArguments(ValueError):
    """`path` or `args` of run_tests cannot be used."""


def check_args(args: list[str], *, max_args: int = MAX_ARGS) -> tuple[str, ...]:
    if len(args) > max_args:
        raise BadSuiteArguments(f"At most {max_args} arguments are accepted; {len(args)} were given.")
    for arg in args:
        if not isinstance(arg, str) or not arg or len(arg) > MAX_ARG_CHARS or "\0" in arg:
            raise BadSuiteArguments(f"Each argument is a non-empty string of at most {MAX_ARG_CHARS} characters.")
    return tuple(args)


def suite_command(checkout: Path, *, path: str = "", args: list[str] | None = None) -> SuiteCommand | None:
    """The command that runs the checkout's tests (narrowed to `path` and `args`), or None when no stack
    with a known test command is found."""
    extra = check_args(list(args or []))
    found = _by_markers(checkout)
    if found is None:
        return None
    tool, root, why = found
    target = _relative_to(path, root)
    argv: tuple[str, ...]
    if tool == "pytest":
        argv = ("python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, *([target] if target else []))
    elif tool == "npm":
        rest = (*extra, *([target] if target else []))
        argv = ("npm", "test", "--silent", *(("--", *rest) if rest else ()))
    elif tool == "go":
        package = f"./{target.rstrip('/')}/..." if target else "./..."
        argv = ("go", "test", "-v", *extra, package)
    elif tool == "dotnet":
        argv = ("dotnet", "test", "--nologo", *extra, *([target] if target else []))
    elif tool == "cargo":
        argv = ("cargo", "test", "--offline", *extra)
    else:
        argv = ("mvn", "-B", "-o", "test", *extra)
    return SuiteCommand(tool=tool, argv=argv, workdir=root, why=why)


def _relative_to(path: str, root: str) -> str:
    path = path.strip().strip("/")
    if not path or path == ".":
        return ""
    if root != "." and (path == root or path.startswith(root.rstrip("/") + "/")):
        path = path[len(root) :].lstrip("/")
    return path


def _by_markers(checkout: Path) -> tuple[str, str, str] | None:
    """(tool, project folder, why) for the checkout."""
    stack = detect_stack(checkout)
    kind, root = stack.get("kind", "unknown"), stack.get("root", ".") or "."
    if kind == "python":
        return "pytest", root, f"Python project at {root}: pytest."
    if kind == "node":
        return "npm", root, f"Node project at {root}: npm test."
    if kind == "dotnet":
        return "dotnet", root, f".NET project at {root}: dotnet test."
    for marker, tool, name in (("go.mod", "go", "Go"), ("Cargo.toml", "cargo", "Rust"), ("pom.xml", "maven", "Maven")):
        if _regular_file(checkout / marker):
            return tool, ".", f"{name} project ({marker}): {tool} test."
    for pattern in PYTHON_TEST_FILES:
        if any(_regular_file(found) for found in checkout.glob(pattern)):
            return "pytest", ".", "Python test files (test_*.py) and no project file: pytest."
    return None


def _regular_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


# -- summaries ---------------------------------------------------------------------------------------------------

_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)\b")
_PYTEST_LINE = re.compile(r"^[= ]*(?:\d+ \w+(?:, )?)+.* in [\d.]+s(?: \([^)]*\))?[= ]*$")
_JEST = re.compile(r"^\s*Tests:\s+(.*\d+ total.*)$")
_VITEST = re.compile(r"^\s*Tests\s+(.*)\(\d+\)\s*$")
_MOCHA = re.compile(r"^\s*(\d+) (passing|failing|pending)\b")
_NODE_TAP = re.compile(r"^# (pass|fail|skipped|todo) (\d+)$")
_GO = re.compile(r"^--- (PASS|FAIL|SKIP): ")
_DOTNET = re.compile(
    r"(?:Passed|Failed)!\s*-\s*Failed:\s*(\d+),\s*Passed:\s*(\d+),\s*Skipped:\s*(\d+),\s*Total:\s*(\d+)"
)
_DOTNET_OLD = re.compile(
    r"Total tests:\s*(\d+)\.?\s*(?:Passed:\s*(\d+)\.?)?\s*(?:Failed:\s*(\d+)\.?)?\s*(?:Skipped:\s*(\d+))?"
)
_CARGO = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored")
_MAVEN = re.compile(r"Tests run:\s*(\d+),\s*Failures:\s*(\d+),\s*Errors:\s*(\d+),\s*Skipped:\s*(\d+)")


def parse_counts(tool: str, output: str) -> SuiteCounts:
    """The counts a test tool printed, or an empty SuiteCounts when its summary is not there."""
    parser = {
        "pytest": parse_pytest,
        "npm": parse_node,
        "go": parse_go,
        "dotnet": parse_dotnet,
        "cargo": parse_cargo,
        "maven": parse_maven,
    }.get(tool)
    return parser(output) if parser else SuiteCounts()


def parse_pytest(output: str) -> SuiteCounts:
    for line in reversed(output.splitlines()):
        text = line.strip()
        if not _PYTEST_LINE.match(text) and not text.strip("= ").startswith("no tests ran"):
            continue
        found: dict[str, int] = {}
        for number, word in _PYTEST_COUNT.findall(text):
            key = "errors" if word.startswith("error") else word
            found[key] = found.get(key, 0) + int(number)
        return SuiteCounts(
            passed=found.get("passed", 0) + found.get("xpassed", 0),
            failed=found.get("failed", 0),
            errors=found.get("errors", 0),
            skipped=found.get("skipped", 0) + found.get("xfailed", 0),
            summary=text.strip("= "),
        )
    return SuiteCounts()


def _words(text: str) -> dict[str, int]:
    return {word: int(number) for number, word in re.findall(r"(\d+) (passed|failed|skipped|todo|total)", text)}


def parse_node(output: str) -> SuiteCounts:
    lines = output.splitlines()
    for line in reversed(lines):
        match = _JEST.match(line) or _VITEST.match(line)
        if match:
            found = _words(match.group(1))
            return SuiteCounts(
                passed=found.get("passed", 0),
                failed=found.get("failed", 0),
                skipped=found.get("skipped", 0) + found.get("todo", 0),
                summary=line.strip(),
            )
    mocha = {word: int(number) for line in lines for number, word in _MOCHA.findall(line)}
    if mocha:
        summary = ", ".join(f"{count} {word}" for word, count in mocha.items())
        return SuiteCounts(
            passed=mocha.get("passing", 0), failed=mocha.get("failing", 0), skipped=mocha.get("pending", 0),
            summary=summary,
        )  # fmt: skip
    tap = {word: int(number) for line in lines for word, number in _NODE_TAP.findall(line.strip())}
    if "pass" in tap or "fail" in tap:
        summary = ", ".join(f"{count} {word}" for word, count in tap.items())
        return SuiteCounts(
            passed=tap.get("pass", 0), failed=tap.get("fail", 0), skipped=tap.get("skipped", 0) + tap.get("todo", 0),
            summary=summary,
        )  # fmt: skip
    return SuiteCounts()


def parse_go(output: str) -> SuiteCounts:
    found = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for line in output.splitlines():
        match = _GO.match(line)
        if match:
            found[match.group(1)] += 1
    if not any(found.values()):
        return SuiteCounts()
    summary = f"{found['PASS']} passed, {found['FAIL']} failed, {found['SKIP']} skipped"
    return SuiteCounts(passed=found["PASS"], failed=found["FAIL"], skipped=found["SKIP"], summary=summary)


def parse_dotnet(output: str) -> SuiteCounts:
    totals = [0, 0, 0]
    seen = []
    for line in output.splitlines():
        match = _DOTNET.search(line)
        if match:
            failed, passed, skipped, _total = (int(part) for part in match.groups())
            totals = [totals[0] + passed, totals[1] + failed, totals[2] + skipped]
            seen.append(line.strip())
    if not seen:
        for line in reversed(output.splitlines()):
            old = _DOTNET_OLD.search(line)
            if old and old.group(2) is not None:
                passed, failed, skipped = (int(old.group(index) or 0) for index in (2, 3, 4))
                return SuiteCounts(passed=passed, failed=failed, skipped=skipped, summary=line.strip())
        return SuiteCounts()
    return SuiteCounts(passed=totals[0], failed=totals[1], skipped=totals[2], summary="; ".join(seen)[:500])


def parse_cargo(output: str) -> SuiteCounts:
    matches = _CARGO.findall(output)
    if not matches:
        return SuiteCounts()
    passed, failed, ignored = (sum(int(match[index]) for match in matches) for index in range(3))
    return SuiteCounts(
        passed=passed, failed=failed, skipped=ignored, summary=f"{passed} passed; {failed} failed; {ignored} ignored"
    )


def parse_maven(output: str) -> SuiteCounts:
    matches = _MAVEN.findall(output)
    if not matches:
        return SuiteCounts()
    run, failures, errors, skipped = (int(part) for part in matches[-1])  # the last one is the module's total
    return SuiteCounts(
        passed=run - failures - errors - skipped,
        failed=failures,
        errors=errors,
        skipped=skipped,
        summary=f"Tests run: {run}, Failures: {failures}, Errors: {errors}, Skipped: {skipped}",
    )


# -- output cut to size ------------------------------------------------------------------------------------------


def cut_output(text: str, limit: int, *, already_cut: bool = False) -> str:
    """`text` within `limit` bytes (UTF-8): its head and its tail (where test summaries are), with a marker
    saying how much was cut between them. `already_cut`: the runner stopped keeping output earlier (then
    the end is missing, and the marker says so)."""
    data = text.encode("utf-8", errors="replace")
    tail_note = "\n[... output cut here: it was longer than the runner keeps ...]" if already_cut else ""
    if len(data) <= limit:
        return text + tail_note
    head_bytes = limit // 4
    tail_bytes = limit - head_bytes
    cut = len(data) - head_bytes - tail_bytes
    head = data[:head_bytes].decode("utf-8", errors="ignore")
    tail = data[len(data) - tail_bytes :].decode("utf-8", errors="ignore")
    return f"{head}\n[... {cut:,} bytes cut ...]\n{tail}{tail_note}"
