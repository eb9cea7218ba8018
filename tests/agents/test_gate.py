from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.gate import (
    MAX_CALLS_PER_ANSWER,
    MAX_FILE_BYTES,
    Decision,
    check_call,
    check_path,
    validate,
)
from agents.prompts import TOOL_SCHEMAS
from agents.seed_data import STANDARD_TEAM
from agents.tools import ToolContext, ToolFailed, read_file, write_file

ROLES = {r["name"]: r for r in STANDARD_TEAM["roles"]}
CODER_TOOLS = ROLES["coder"]["tools"]
GUARD_TOOLS = ROLES["integrity_guard"]["tools"]
ALL_TOOLS = list(TOOL_SCHEMAS)


def call(name: str, args: Any, *, tools: list[str] = ALL_TOOLS, n: int = 0, governance: bool = False) -> Decision:
    return check_call(name, args, allowed_tools=tools, calls_in_answer=n, governance_on=governance)


# ---------------------------------------------------------------------------------------------------------------
# check_call


def test_a_good_call_is_allowed() -> None:
    decision = call("write_file", {"path": "services/x.py", "content": "x = 1\n"}, tools=CODER_TOOLS, governance=True)

    assert decision == Decision(True)


def test_unknown_tool() -> None:
    decision = call("launch_missiles", {})

    assert (decision.allowed, decision.rule) == (False, "unknown_tool")
    assert "read_file" in decision.fix
    assert call(None, {}).rule == "unknown_tool"  # type: ignore[arg-type]


def test_tool_not_in_the_roles_list() -> None:
    decision = call("write_file", {"path": "services/x.py", "content": ""}, tools=GUARD_TOOLS)

    assert (decision.allowed, decision.rule) == (False, "tool_not_allowed")
    assert "write_file" in decision.message
    assert "run_verification" in decision.fix


def test_at_most_twenty_calls_per_turn() -> None:
    assert call("get_card_context", {}, n=MAX_CALLS_PER_ANSWER - 1).allowed
    decision = call("get_card_context", {}, n=MAX_CALLS_PER_ANSWER)

    assert (decision.allowed, decision.rule) == (False, "too_many_calls")


@pytest.mark.parametrize(
    ("name", "args", "words"),
    [
        ("read_file", {}, "'path' is required"),
        ("read_file", {"path": 3}, "must be a string"),
        ("read_file", {"path": "a", "mode": "w"}, "unknown argument 'mode'"),
        ("write_file", {"path": "services/a.py"}, "'content' is required"),
        ("delete_file", {"path": "a", "confirm": "yes"}, "must be true or false"),
        ("update_card_status", {"status": "finished"}, "must be one of"),
        ("update_card_status", {"status": "blocked", "wait_reason": "bored"}, "must be one of"),
        ("create_card", {"summary": "abc"}, "at least 5 characters"),
        ("create_card", {"summary": "Split it", "depends_on": ["x"]}, "must be an integer"),
        ("create_card", {"summary": "Split it", "depends_on": [True]}, "must be an integer"),
        ("add_comment", {"body": ""}, "at least 1 characters"),
        ("add_note", {"body": "b", "to_seat": 5}, "must be a string"),
        ("get_card_context", {"x": 1}, "unknown argument"),
        ("run_verification", [], "must be a JSON object"),
    ],
)
def test_bad_arguments(name: str, args: Any, words: str) -> None:
    decision = call(name, args)

    assert (decision.allowed, decision.rule) == (False, "bad_arguments")
    assert words in decision.message
    assert decision.fix.startswith(f"Call {name} with")


def test_delete_needs_confirm_true() -> None:
    decision = call("delete_file", {"path": "services/a.py", "confirm": False})

    assert (decision.allowed, decision.rule) == (False, "confirm_required")
    assert call("delete_file", {"path": "services/a.py", "confirm": True}).allowed


def test_files_are_at_most_one_mebibyte_of_utf8() -> None:
    assert call("write_file", {"path": "a.py", "content": "x" * MAX_FILE_BYTES}).allowed
    decision = call("write_file", {"path": "a.py", "content": "é" * (MAX_FILE_BYTES // 2 + 1)})

    assert (decision.allowed, decision.rule) == (False, "too_large")


def test_writes_into_the_verification_fixtures_are_refused_but_reads_are_not() -> None:
    decision = call("write_file", {"path": "verification/expected.json", "content": "{}"})

    assert (decision.allowed, decision.rule) == (False, "fixture_protected")
    assert call("delete_file", {"path": "./Verification/x", "confirm": True}).rule == "fixture_protected"
    assert call("read_file", {"path": "verification/expected.json"}).allowed


def test_governance_puts_writes_under_component_folders() -> None:
    decision = call("write_file", {"path": "docs/notes.md", "content": ""}, governance=True)

    assert (decision.allowed, decision.rule) == (False, "outside_component")
    assert "services" in decision.message and "services/notes.md" in decision.fix
    assert call("write_file", {"path": "docs/notes.md", "content": ""}, governance=False).allowed
    assert call("write_file", {"path": "src/services/notes.md", "content": ""}, governance=True).allowed
    assert call("read_file", {"path": "docs/notes.md"}, governance=True).allowed


def test_list_directory_accepts_the_workspace_root() -> None:
    assert call("list_directory", {}).allowed
    assert call("list_directory", {"path": "."}).allowed
    assert call("list_directory", {"path": ""}).allowed
    assert not call("read_file", {"path": ""}).allowed


def test_path_rules_apply_through_check_call() -> None:
    decision = call("read_file", {"path": "../etc/passwd"})

    assert (decision.allowed, decision.rule) == (False, "path_refused")
    assert decision.message and decision.fix


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "//server/share/x",
        "\\\\server\\share\\x",
        "C:\\Windows\\x",
        "C:x",
        "c:/x",
        "a\\b",
        "a/../b",
        "..",
        "a/\x00b",
        "a/\nb",
        "a/" + "x" * 256,
        "a/" * 600,
        ".git/config",
        "src/.GIT/hooks/pre-commit",
        "",
    ],
)
def test_check_path_refuses(path: str) -> None:
    decision = check_path(path)

    assert not decision.allowed
    assert decision.rule == "path_refused"
    assert decision.message


@pytest.mark.parametrize("path", ["a.py", "services/a.py", "./a/b.c", "a//b", "x" * 255, "…/ü.py", "~/x", "..a/b.."])
def test_check_path_accepts(path: str) -> None:
    assert check_path(path).allowed


def test_writes_need_a_file_name() -> None:
    assert not check_path("services/", write=True).allowed
    assert not check_path("services/.", write=True).allowed
    assert check_path("services/", write=False).allowed


def test_validator_subset() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]}

    assert validate({"n": 2}, schema) == []
    assert validate({"n": 0}, schema) == ["argument 'n' must be at least 1"]
    assert validate({"n": 1.5}, schema) == ["argument 'n' must be an integer, not a number"]
    assert validate({"n": 2, "extra": 1}, schema) == []  # additionalProperties not false here
    assert validate("x", schema) == ["the arguments must be an object, not a string"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
KEYS = st.sampled_from(["path", "content", "confirm", "status", "summary", "body", "depends_on", "x"]) | st.text()


@given(st.dictionaries(KEYS, JSON_VALUES, max_size=5))
@settings(max_examples=300, deadline=None)
def test_check_call_never_crashes_on_arbitrary_arguments(args: dict[str, Any]) -> None:
    for name in TOOL_SCHEMAS:
        decision = call(name, args)
        assert isinstance(decision.allowed, bool)
        if not decision.allowed:
            assert decision.rule and decision.message


# ---------------------------------------------------------------------------------------------------------------
# The file tools on disk, with planted links


class Arena:
    """base/workspace (the agent's workspace, with planted symlinks) and base/outside (a sentinel folder)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.workspace = base / "workspace"
        self.outside = base / "outside"
        self.workspace.mkdir()
        self.outside.mkdir()
        (self.outside / "secret.txt").write_text("secret")
        (self.workspace / "verification").mkdir()
        (self.workspace / "verification" / "expected.json").write_text("{}")
        (self.workspace / "a" / "b").mkdir(parents=True)
        (self.workspace / "a" / "b" / "ok.txt").write_text("inside")
        ws = self.workspace
        os.symlink(self.outside, ws / "link_out")  # absolute symlinked directory
        os.symlink("../outside", ws / "link_rel")  # relative symlinked directory
        os.symlink("../../../outside", ws / "a" / "b" / "deep_out")
        os.symlink("..", ws / "link_parent")
        os.symlink("/", ws / "link_root")
        os.symlink(self.outside / "secret.txt", ws / "link_secret")  # symlinked file
        os.symlink(self.outside / "new.txt", ws / "link_dangling")  # dangling, pointing outside
        os.symlink("link_out", ws / "chain")  # symlink to a symlink
        os.symlink("loop2", ws / "loop1")
        os.symlink("loop1", ws / "loop2")
        os.symlink("verification", ws / "link_fixtures")
        os.symlink("a/b", ws / "link_inside")  # harmless: stays inside
        self.snapshot = self.outside_state()

    def outside_state(self) -> dict[str, bytes]:
        state = {}
        for path in sorted(self.outside.rglob("*")):
            state[str(path.relative_to(self.outside))] = path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(self.base.iterdir()):
            state[f"<base>/{path.name}"] = b""
        state["<fixtures>"] = (self.workspace / "verification" / "expected.json").read_bytes()
        state["<fixture-files>"] = "\n".join(
            sorted(str(p) for p in (self.workspace / "verification").rglob("*"))
        ).encode()
        return state


def tools(workspace: Path) -> ToolContext:
    return ToolContext(card=None, actor=None, workspace=workspace, seats=[], verification=lambda card: {})


def write_through(workspace: Path, path: str, content: str) -> Path | None:
    """What the write_file tool does with `path`; where it wrote, or None when it was refused."""
    try:
        write_file(tools(workspace), path, content)
    except ToolFailed:
        return None
    return workspace.joinpath(*[part for part in path.split("/") if part not in ("", ".")])


def read_through(workspace: Path, path: str) -> str | None:
    try:
        return read_file(tools(workspace), path)["content"]
    except ToolFailed:
        return None


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    yield Arena(tmp_path_factory.mktemp("arena"))


def assert_contained(arena: Arena, path: str) -> None:
    written = write_through(arena.workspace, path, "pwned")
    if written is not None:
        # A write that was made landed in a regular file inside the workspace, never through a link.
        assert written.is_file() and not written.is_symlink(), (path, written)
        assert written.resolve().is_relative_to(arena.workspace.resolve()), (path, written)
        assert not written.resolve().is_relative_to((arena.workspace / "verification").resolve())
    assert read_through(arena.workspace, path) != "secret", path
    assert arena.outside_state() == arena.snapshot, path


@pytest.mark.parametrize(
    "path",
    [
        "link_out/x.txt",
        "link_out/secret.txt",
        "link_rel/x.txt",
        "a/b/deep_out/x.txt",
        "link_parent/outside/x.txt",
        "link_parent/x.txt",
        "link_root/tmp/x.txt",
        "chain/x.txt",
        "chain/sub/dir/x.txt",
        "loop1/x",
        "link_fixtures/expected.json",
        "link_fixtures/new.json",
        "link_inside/ok.txt",
        "verification/expected.json",
        "../outside/x.txt",
        "a/../../outside/x.txt",
    ],
)
def test_planted_symlinks_and_escapes_are_refused(arena: Arena, path: str) -> None:
    assert write_through(arena.workspace, path, "pwned") is None
    assert read_through(arena.workspace, path) is None or path.startswith("verification/")
    assert_contained(arena, path)


@pytest.mark.parametrize("path", ["link_secret", "link_dangling", "loop1"])
def test_a_link_in_place_of_the_file_is_replaced_not_followed(tmp_path: Path, path: str) -> None:
    arena = Arena(tmp_path)
    assert read_through(arena.workspace, path) is None

    assert_contained(arena, path)
    assert (arena.workspace / path).read_text() == "pwned"


def test_links_are_not_followed_even_when_they_stay_inside(arena: Arena) -> None:
    assert read_through(arena.workspace, "link_inside/ok.txt") is None
    assert read_through(arena.workspace, "a/b/ok.txt") == "inside"


def test_reads_of_fixtures_are_allowed(arena: Arena) -> None:
    assert read_through(arena.workspace, "verification/expected.json") == "{}"


def test_refusal_carries_rule_and_message(arena: Arena) -> None:
    with pytest.raises(ToolFailed) as info:
        write_file(tools(arena.workspace), "link_out/x.txt", "pwned")

    assert info.value.rule == "symlink"
    assert "symbolic link" in info.value.message and str(arena.base) not in info.value.message
    assert info.value.governance is True


SEGMENTS = [
    "..",
    ".",
    "",
    "...",
    "link_out",
    "link_rel",
    "link_parent",
    "link_root",
    "link_secret",
    "link_dangling",
    "chain",
    "loop1",
    "link_fixtures",
    "link_inside",
    "verification",
    "a",
    "b",
    "deep_out",
    "outside",
    "secret.txt",
    ".git",
    "C:",
    "~",
    "x" * 256,
    "y" * 255,
    "\x00",
    "a\x00b",
    "nul\x00/..",
    "%2e%2e",
    "..\\..",
    "\\\\server\\share",
    "tmp",
    "etc",
    "ü",
    " ",
]
PREFIXES = ["", "", "", "/", "./", "../", "C:\\", "C:/", "c:", "\\\\srv\\share\\", "//srv/share/", "\\", "~/"]


@st.composite
def hostile_paths(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(PREFIXES))
    segments = draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=8))
    separator = draw(st.sampled_from(["/", "/", "/", "\\", "//"]))
    return prefix + separator.join(segments) + draw(st.sampled_from(["", "", "/", "/x.txt", "/new.txt"]))


@given(path=hostile_paths())
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_paths_never_reach_outside_the_workspace(arena: Arena, path: str) -> None:
    assert_contained(arena, path)


@given(path=st.text(max_size=300))
@settings(max_examples=1500, deadline=None)
def test_arbitrary_text_paths_never_reach_outside_the_workspace(arena: Arena, path: str) -> None:
    assert_contained(arena, path)


@given(path=st.text(alphabet=st.sampled_from(["/", ".", "\\", ":", "C", "a", "l", "\x00", "~"]), max_size=40))
@settings(max_examples=1500, deadline=None)
def test_punctuation_soup_never_reaches_outside_the_workspace(arena: Arena, path: str) -> None:
    assert_contained(arena, path)
