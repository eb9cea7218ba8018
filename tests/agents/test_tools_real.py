"""The tools for real work on real files: search_code, edit_file, git_diff (through a real project workspace)
and finish_turn (through the engine, with a fake model server)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from agents import services, tools
from agents.gate import check_call
from agents.models import ModelProfile, Turn
from agents.seed_data import STANDARD_TEAM
from agents.services import seed_standard_configuration
from agents.tools import ToolContext, ToolFailed, execute_tool
from agents.workspaces import ProjectWorkspace
from boards.actors import Actor
from boards.models import Card, Epic, Project
from boards.services import epic_import
from tests.agents.fake_llm import FakeLLMServer, ollama_stream

CODER_TOOLS = next(role["tools"] for role in STANDARD_TEAM["roles"] if role["name"] == "coder")


def context(workspace: Path, diff: Any = None) -> ToolContext:
    return ToolContext(
        card=None,
        actor=None,
        workspace=workspace,
        seats=[],
        verification=lambda card: {},
        diff=diff or (lambda path: ""),
    )


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")


def search(workspace: Path, **arguments: Any) -> dict[str, Any]:
    decision = check_call("search_code", arguments, allowed_tools=CODER_TOOLS, calls_in_answer=0, governance_on=False)
    assert decision.allowed, decision
    return execute_tool(context(workspace), "search_code", arguments)


# -- search_code -----------------------------------------------------------------------------------------------


@pytest.fixture
def code(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    write(
        workspace,
        {
            "app/parse.py": "def parse(text):\n    return text.split()\n",
            "app/render.py": "def render(items):\n    return parse(', '.join(items))\n",
            "README.md": "Call parse() to split words.\n",
        },
    )
    return workspace


def test_search_code_with_a_regular_expression(code: Path) -> None:
    found = search(code, pattern=r"^def \w+\(")
    assert found["matches"] == ["app/parse.py:1: def parse(text):", "app/render.py:1: def render(items):"]
    assert (found["truncated"], found["files_searched"]) == (False, 3)


def test_search_code_literal_text_is_not_a_pattern(code: Path) -> None:
    assert search(code, pattern="parse(", literal=True)["matches"] == [
        "README.md:1: Call parse() to split words.",
        "app/parse.py:1: def parse(text):",
        "app/render.py:2:     return parse(', '.join(items))",
    ]
    assert search(code, pattern="parse()", literal=True)["matches"] == ["README.md:1: Call parse() to split words."]
    # The same text as a regular expression means something else ("parse" followed by an empty group).
    assert len(search(code, pattern="parse()")["matches"]) == 3


def test_search_code_limited_to_a_path(code: Path) -> None:
    found = search(code, pattern="parse", path="app")
    assert [m.split(":")[0] for m in found["matches"]] == ["app/parse.py", "app/render.py"]
    assert found["files_searched"] == 2
    assert search(code, pattern="parse", path="app/render.py")["matches"] == [
        "app/render.py:2:     return parse(', '.join(items))"
    ]


def test_search_code_bounds_its_matches_and_says_when_it_cut(tmp_path: Path) -> None:
    limit = tools.SEARCH_MAX_MATCHES
    write(tmp_path, {"many.txt": "hit\n" * (limit + 50)})
    found = search(tmp_path, pattern="hit")
    assert len(found["matches"]) == limit and found["truncated"] is True

    # Exactly the limit in one file and one more match in the next: still cut, and it says so.
    exact = tmp_path / "exact"
    write(exact, {"a.txt": "hit\n" * limit, "b.txt": "hit\n"})
    found = search(exact, pattern="hit")
    assert len(found["matches"]) == limit and found["truncated"] is True
    # Exactly the limit and nothing more: not cut.
    write(exact, {"b.txt": "miss\n"})
    found = search(exact, pattern="hit")
    assert len(found["matches"]) == limit and found["truncated"] is False


def test_search_code_shortens_long_lines(tmp_path: Path) -> None:
    write(tmp_path, {"long.txt": "needle " + "x" * 5000 + "\n"})
    (match,) = search(tmp_path, pattern="needle")["matches"]
    assert match.endswith(" [...]") and len(match) < tools.SEARCH_LINE_CHARS + 40


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|aa)+$"])
def test_a_catastrophic_pattern_on_a_long_line_times_out_as_a_tool_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str
) -> None:
    monkeypatch.setattr(tools, "SEARCH_SECONDS", 0.5)
    write(tmp_path, {"aaa.txt": "a" * 5000 + "!\n"})
    started = time.monotonic()
    with pytest.raises(ToolFailed) as failed:
        search(tmp_path, pattern=pattern)
    assert failed.value.rule == "search_timeout" and not failed.value.governance
    assert "0.5 s" in failed.value.message
    assert time.monotonic() - started < 5


def test_search_code_refuses_an_invalid_pattern(code: Path) -> None:
    with pytest.raises(ToolFailed) as failed:
        search(code, pattern="def (")
    assert failed.value.rule == "bad_pattern"


def test_search_code_skips_binary_files_and_git_folders_and_never_follows_links(tmp_path: Path) -> None:
    workspace, outside = tmp_path / "ws", tmp_path / "outside"
    write(outside, {"secret.txt": "needle outside\n", "folder/deep.txt": "needle deep outside\n"})
    write(
        workspace,
        {
            "plain.txt": "needle here\n",
            "blob.bin": b"\x00\x01needle in binary\n",
            ".git/config": "needle in git\n",
            "sub/.git/HEAD": "needle in a nested git\n",
        },
    )
    os.symlink(outside / "secret.txt", workspace / "link.txt")
    os.symlink(outside / "folder", workspace / "linked-folder")
    found = search(workspace, pattern="needle")
    assert found["matches"] == ["plain.txt:1: needle here"]
    assert found["files_searched"] == 2  # plain.txt and blob.bin: links and .git are not even walked
    assert search(workspace, pattern="needle", path="linked-folder")["matches"] == []


def test_search_code_in_a_real_card_worktree_skips_its_git_metadata(tmp_path: Path) -> None:
    workspace = ProjectWorkspace(tmp_path / "project")
    worktree = workspace.card_worktree("4")
    write(worktree, {"main.py": "print('Initialize')\n"})
    workspace.commit_card("4", seat="senior_developer", message="add main")
    # "Initialize" is also in the repository's first commit message, inside .git of the repository.
    assert search(workspace.repo, pattern="Initialize")["matches"] == []
    assert search(worktree, pattern="Initialize")["matches"] == ["main.py:1: print('Initialize')"]


def test_search_code_path_goes_through_the_path_policy(code: Path) -> None:
    decision = check_call(
        "search_code",
        {"pattern": "x", "path": "../"},
        allowed_tools=CODER_TOOLS,
        calls_in_answer=0,
        governance_on=False,
    )
    assert not decision.allowed and decision.rule == "path_refused"


# -- edit_file -------------------------------------------------------------------------------------------------


def edit(workspace: Path, **arguments: Any) -> dict[str, Any]:
    decision = check_call("edit_file", arguments, allowed_tools=CODER_TOOLS, calls_in_answer=0, governance_on=False)
    assert decision.allowed, decision
    return execute_tool(context(workspace), "edit_file", arguments)


def test_edit_file_replaces_a_unique_string(code: Path) -> None:
    done = edit(code, path="app/parse.py", old_text="text.split()", new_text="text.split(',')")
    edited = "def parse(text):\n    return text.split(',')\n"
    assert (code / "app/parse.py").read_text() == edited
    assert done == {"path": "app/parse.py", "bytes": len(edited), "replaced_at_line": 2}


@pytest.mark.parametrize(
    ("old_text", "rule"),
    [
        ("text.splat()", "edit_not_found"),
        ("return", "edit_not_unique"),
        ("def parse(text):\n  return", "edit_not_found"),
    ],
)
def test_edit_file_is_refused_and_changes_nothing_when_the_text_is_missing_or_not_unique(
    tmp_path: Path, old_text: str, rule: str
) -> None:
    write(tmp_path, {"twice.py": "def parse(text):\n    return text.split()\n\ndef two():\n    return 2\n"})
    before = (tmp_path / "twice.py").read_bytes()
    with pytest.raises(ToolFailed) as failed:
        edit(tmp_path, path="twice.py", old_text=old_text, new_text="X")
    assert failed.value.rule == rule
    assert "twice.py" in failed.value.message
    assert (tmp_path / "twice.py").read_bytes() == before


def test_edit_file_of_a_missing_file_fails_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(ToolFailed):
        edit(tmp_path, path="nothing.py", old_text="a", new_text="b")
    assert not (tmp_path / "nothing.py").exists()


# -- git_diff --------------------------------------------------------------------------------------------------


def test_git_diff_shows_the_committed_change_of_the_card_branch_limited_to_a_path(tmp_path: Path) -> None:
    workspace = ProjectWorkspace(tmp_path / "project")
    worktree = workspace.card_worktree("9")
    ctx = context(worktree, diff=lambda path: workspace.card_diff("9", path=path))
    assert execute_tool(ctx, "git_diff", {})["diff"] == "(no changes on this card yet)"

    write(worktree, {"app/core.py": "VALUE = 1\n", "docs/notes.md": "# Notes\n"})
    workspace.commit_card("9", seat="senior_developer", message="core and notes")
    write(worktree, {"app/uncommitted.py": "LATER = True\n"})

    whole = execute_tool(ctx, "git_diff", {})
    assert whole["path"] == "."
    assert "+++ b/app/core.py" in whole["diff"] and "+VALUE = 1" in whole["diff"]
    assert "+++ b/docs/notes.md" in whole["diff"]
    assert "uncommitted" not in whole["diff"]  # the branch's commits, not the worktree's loose files

    docs = execute_tool(ctx, "git_diff", {"path": "docs"})
    assert "+++ b/docs/notes.md" in docs["diff"] and "app/core.py" not in docs["diff"]
    with pytest.raises(ToolFailed) as refused:
        execute_tool(ctx, "git_diff", {"path": "../repo"})
    assert refused.value.rule == "path_refused"


# -- finish_turn, through the engine ---------------------------------------------------------------------------


@pytest.fixture
def one_card(settings: Any, tmp_path: Path, db: None) -> Epic:
    settings.DATA_DIR = tmp_path
    seed_standard_configuration()
    project = Project.objects.create(name="Finish", slug="finish", require_verification=False)
    return epic_import(
        project=project,
        data={
            "name": "Finish",
            "team": "standard",
            "cards": [{"summary": "Look at the parser", "seat": "senior_developer"}],
        },
        actor=Actor.orket("test"),
    )


def answer(*calls: tuple[str, dict[str, Any]]) -> Any:
    text = "```json\n" + "\n".join(json.dumps({"tool": name, "args": args}) for name, args in calls) + "\n```"
    return ollama_stream([text])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("changes", [False, True])
def test_finish_turn_ends_the_turn_with_its_summary(one_card: Epic, fake_llm: FakeLLMServer, changes: bool) -> None:
    """finish_turn ends the turn at once, its summary (and what is left) the turn's outcome. A worker that
    changed files and finishes hands the card to review; one that changed nothing leaves it where it is."""
    finish = ("finish_turn", {"summary": "Looked at the parser.", "remaining": "Its tests."})
    first = answer(("write_file", {"path": "parser.py", "content": "X = 1\n"})) if changes else None
    fake_llm.queue(*[reply for reply in (first, answer(finish)) if reply is not None])
    profile = ModelProfile.objects.create(
        name="fake", provider="ollama", base_url=fake_llm.base_url, model="fake:1b", timeout_seconds=5
    )
    run = services.run_start(epic=one_card, profile=profile)
    services.run_advance(run_id=run.pk)
    services.turn_execute(turn_id=Turn.objects.get(run=run, number=1).pk)
    turn = Turn.objects.get(run=run, number=1)
    assert turn.outcome == "Looked at the parser. Left to do: Its tests."
    steps = list(turn.steps.order_by("number"))
    assert steps[-1].outcome == "finished" and len(steps) == (2 if changes else 1)
    assert len([r for r in fake_llm.requests if r.path == "/api/chat"]) == len(steps)
    card = Card.objects.get(epic=one_card)
    assert card.status == ("code_review" if changes else "in_progress")
