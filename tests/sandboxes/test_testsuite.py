"""sandboxes.testsuite: the test command of a checkout, each tool's summary, and output cut to size (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.testsuite import (
    BadSuiteArguments,
    SuiteCounts,
    cut_output,
    parse_cargo,
    parse_counts,
    parse_dotnet,
    parse_go,
    parse_maven,
    parse_node,
    parse_pytest,
    suite_command,
)

PYTEST_QUIET = """\
.F                                                                       [100%]
=================================== FAILURES ===================================
____________________________________ test_b ____________________________________
E       assert 1 == 2
=========================== short test summary info ============================
FAILED test_x.py::test_b - assert 1 == 2
1 failed, 1 passed in 0.03s
"""


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (PYTEST_QUIET, SuiteCounts(1, 1, 0, 0, "1 failed, 1 passed in 0.03s")),
        ("===== 3 passed, 1 skipped, 2 warnings in 1.20s =====\n", SuiteCounts(3, 0, 0, 1, "")),
        ("==== 1 failed, 4 passed, 2 errors, 1 xfailed in 0.51s (0:00:00) ====", SuiteCounts(4, 1, 2, 1, "")),
        ("5 passed in 0.01s\n", SuiteCounts(5, 0, 0, 0, "")),
        ("no tests ran in 0.01s\n", SuiteCounts(0, 0, 0, 0, "")),
        ("ImportError: no module named x\n", SuiteCounts()),
    ],
)
def test_pytest(output: str, expected: SuiteCounts) -> None:
    found = parse_pytest(output)
    assert (found.passed, found.failed, found.errors, found.skipped) == (
        expected.passed,
        expected.failed,
        expected.errors,
        expected.skipped,
    )
    if expected.summary:
        assert found.summary == expected.summary


def test_pytest_reads_the_last_summary_not_a_test_printing_one() -> None:
    output = "print: 9 passed in 0.1s\n" + PYTEST_QUIET
    assert parse_pytest(output).passed == 1


def test_jest_and_vitest() -> None:
    jest = "Test Suites: 1 failed, 1 total\nTests:       1 failed, 2 passed, 3 total\nSnapshots:   0 total\n"
    assert parse_node(jest) == SuiteCounts(2, 1, None, 0, "Tests:       1 failed, 2 passed, 3 total")
    vitest = " Test Files  1 passed (1)\n      Tests  4 passed | 1 skipped (5)\n"
    found = parse_node(vitest)
    assert (found.passed, found.failed, found.skipped) == (4, 0, 1)


def test_mocha_and_node_test() -> None:
    mocha = "  parser\n    ✓ parses\n    1) fails\n\n  3 passing (12ms)\n  1 failing\n  2 pending\n"
    found = parse_node(mocha)
    assert (found.passed, found.failed, found.skipped) == (3, 1, 2)
    tap = "TAP version 13\nok 1 - a\n# tests 3\n# pass 2\n# fail 1\n# skipped 0\n# todo 0\n"
    found = parse_node(tap)
    assert (found.passed, found.failed, found.skipped) == (2, 1, 0)
    assert parse_node("npm ERR! missing script: test\n") == SuiteCounts()


def test_go() -> None:
    output = (
        "=== RUN   TestAdd\n--- PASS: TestAdd (0.00s)\n=== RUN   TestSub\n--- FAIL: TestSub (0.00s)\n"
        "    --- PASS: TestSub/inner (0.00s)\n--- SKIP: TestSlow (0.00s)\nFAIL\nFAIL\texample.com/m\t0.01s\n"
    )
    found = parse_go(output)
    assert (found.passed, found.failed, found.skipped) == (1, 1, 1)
    assert parse_go("ok  \texample.com/m\t0.01s [no tests to run]\n") == SuiteCounts()


def test_dotnet() -> None:
    new = (
        "Failed!  - Failed:     1, Passed:     2, Skipped:     0, Total:     3, Duration: 12 ms - Api.Tests.dll\n"
        "Passed!  - Failed:     0, Passed:     5, Skipped:     1, Total:     6, Duration: 3 ms - Core.Tests.dll\n"
    )
    found = parse_dotnet(new)
    assert (found.passed, found.failed, found.skipped) == (7, 1, 1)
    old = "Total tests: 4. Passed: 3. Failed: 1. Skipped: 0.\n"
    found = parse_dotnet(old)
    assert (found.passed, found.failed, found.skipped) == (3, 1, 0)


def test_cargo_sums_every_test_binary() -> None:
    output = (
        "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n"
        "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n"
    )
    found = parse_cargo(output)
    assert (found.passed, found.failed, found.skipped) == (5, 1, 1)


def test_maven_reads_the_total() -> None:
    output = (
        "Tests run: 2, Failures: 0, Errors: 0, Skipped: 0, Time elapsed: 0.1 s - in a.ATest\n"
        "Tests run: 3, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 0.1 s - in a.BTest\n"
        "[INFO] Results:\n[ERROR] Tests run: 5, Failures: 1, Errors: 1, Skipped: 1\n"
    )
    found = parse_maven(output)
    assert (found.passed, found.failed, found.errors, found.skipped) == (2, 1, 1, 1)


def test_unknown_tool_parses_nothing() -> None:
    assert not parse_counts("gradle", "BUILD SUCCESSFUL").parsed
    assert parse_counts("pytest", "2 passed in 0.1s").passed == 2


def write(root: Path, name: str, text: str = "") -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_test_command_of_each_stack(tmp_path: Path) -> None:
    python = tmp_path / "py"
    write(python, "test_x.py", "def test_x():\n    assert True\n")
    found = suite_command(python)
    assert found is not None and found.tool == "pytest" and found.argv[:3] == ("python3", "-m", "pytest")
    narrowed = suite_command(python, path="test_x.py", args=["-k", "x"])
    assert narrowed is not None and narrowed.argv[-3:] == ("-k", "x", "test_x.py")

    node = tmp_path / "node"
    write(node, "package.json", '{"name": "a", "scripts": {"test": "jest"}}')
    found = suite_command(node)
    assert found is not None and found.argv == ("npm", "test", "--silent")

    go = tmp_path / "go"
    write(go, "go.mod", "module example.com/m\n")
    found = suite_command(go, path="pkg")
    assert found is not None and found.argv == ("go", "test", "-v", "./pkg/...")

    for marker, tool in (("Cargo.toml", "cargo"), ("pom.xml", "maven")):
        folder = tmp_path / tool
        write(folder, marker)
        found = suite_command(folder)
        assert found is not None and found.tool == tool

    dotnet = tmp_path / "dotnet"
    write(dotnet, "Api/Api.csproj", '<Project Sdk="Microsoft.NET.Sdk"></Project>')
    found = suite_command(dotnet)
    assert found is not None and found.tool == "dotnet" and found.workdir == "Api"

    assert suite_command(tmp_path / "empty") is None


def test_bad_arguments(tmp_path: Path) -> None:
    write(tmp_path, "test_x.py")
    with pytest.raises(BadSuiteArguments):
        suite_command(tmp_path, args=["x"] * 40)
    with pytest.raises(BadSuiteArguments):
        suite_command(tmp_path, args=["a\0b"])


def test_cut_output_keeps_head_and_tail_with_a_marker() -> None:
    text = "start\n" + "x" * 20_000 + "\nsummary: 1 failed"
    shown = cut_output(text, 1_000)
    assert shown.startswith("start\n") and shown.endswith("summary: 1 failed")
    assert "[... 19,024 bytes cut ...]" in shown
    assert cut_output("short", 1_000) == "short"
    assert cut_output("short", 1_000, already_cut=True).endswith("longer than the runner keeps ...]")
