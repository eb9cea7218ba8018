from __future__ import annotations

import multiprocessing
import subprocess
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from agents.workspaces import (
    MergeConflict,
    ProjectWorkspace,
    WorkspaceBusy,
    WorkspaceError,
    git_env,
)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=git_env(), capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def ws(tmp_path: Path) -> ProjectWorkspace:
    workspace = ProjectWorkspace(tmp_path / "project-1")
    workspace.ensure()
    return workspace


def test_ensure_creates_a_repository_on_main_with_an_initial_commit(ws: ProjectWorkspace) -> None:
    assert git(ws.repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    log = ws.log("main")
    assert len(log) == 1
    assert log[0].author == "Orket"
    assert git(ws.repo, "config", "--local", "user.email") == "orket@localhost"
    assert git(ws.repo, "config", "--local", "commit.gpgsign") == "false"


def test_ensure_is_idempotent(ws: ProjectWorkspace) -> None:
    first = ws.log()

    ws.ensure()

    assert ws.log() == first


def test_card_worktrees_are_separate_branches_worked_in_parallel(ws: ProjectWorkspace) -> None:
    one = ws.card_worktree(1)
    two = ws.card_worktree("2")

    assert one == ws.root / "cards" / "1"
    assert git(one, "rev-parse", "--abbrev-ref", "HEAD") == "card/1"
    assert git(two, "rev-parse", "--abbrev-ref", "HEAD") == "card/2"
    (one / "services").mkdir()
    (one / "services" / "a.py").write_text("A = 1\n")
    (two / "services").mkdir()
    (two / "services" / "b.py").write_text("B = 2\n")

    sha1 = ws.commit_card(1, seat="senior_developer", message="add a")
    sha2 = ws.commit_card(2, seat="lead_architect", message="add b")

    assert sha1 and sha2 and sha1 != sha2
    assert not (two / "services" / "a.py").exists()
    assert ws.card_worktree(1) == one  # existing worktree is reused


def test_commit_uses_the_seat_as_author_and_names_the_card(ws: ProjectWorkspace) -> None:
    path = ws.card_worktree(7)
    (path / "x.txt").write_text("x")

    sha = ws.commit_card(7, seat="senior_developer", message="write x\nwith details")

    entry = ws.log("card/7")[0]
    assert entry.sha == sha
    assert entry.author == "senior_developer"
    assert entry.subject == "card 7: write x with details"
    assert git(path, "log", "-1", "--format=%ae") == "senior_developer@orket.local"
    assert git(path, "log", "-1", "--format=%cn <%ce>") == "Orket <orket@localhost>"


def test_message_already_naming_the_card_is_not_prefixed_twice(ws: ProjectWorkspace) -> None:
    path = ws.card_worktree(7)
    (path / "x.txt").write_text("x")

    ws.commit_card(7, seat="coder", message="card 7: write x")

    assert ws.log("card/7")[0].subject == "card 7: write x"


def test_nothing_changed_returns_none(ws: ProjectWorkspace) -> None:
    ws.card_worktree(3)

    assert ws.commit_card(3, seat="senior_developer", message="nothing") is None
    assert len(ws.log("card/3")) == 1


def test_deletions_are_committed(ws: ProjectWorkspace) -> None:
    path = ws.card_worktree(3)
    (path / "x.txt").write_text("x")
    ws.commit_card(3, seat="a", message="add")
    (path / "x.txt").unlink()

    assert ws.commit_card(3, seat="a", message="remove") is not None
    assert ws.is_clean(path)


def test_card_diff_shows_the_cards_changes_against_main(ws: ProjectWorkspace) -> None:
    path = ws.card_worktree(4)
    (path / "services").mkdir()
    (path / "services" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    ws.commit_card(4, seat="senior_developer", message="calc")

    diff = ws.card_diff(4)

    assert "diff --git a/services/calc.py b/services/calc.py" in diff
    assert "+def add(a, b):" in diff
    assert ws.card_diff(99) == ""


def test_card_diff_is_capped(ws: ProjectWorkspace) -> None:
    path = ws.card_worktree(5)
    (path / "big.txt").write_text("".join(f"line {i} of a long file\n" for i in range(40_000)))
    ws.commit_card(5, seat="a", message="big")

    diff = ws.card_diff(5, max_bytes=50_000)

    assert len(diff.encode()) <= 50_100
    assert diff.endswith("[diff cut at 48 KB]\n")


def test_merge_brings_the_card_into_main(ws: ProjectWorkspace) -> None:
    path = ws.card_worktree(6)
    (path / "a.txt").write_text("a")
    ws.commit_card(6, seat="senior_developer", message="a")

    sha = ws.merge_card(6)

    main = ws.log("main")
    assert main[0].sha == sha
    assert main[0].subject == "card 6: merge card/6 into main"
    assert len(git(ws.repo, "rev-list", "--parents", "-n", "1", sha).split()) == 3  # a real merge commit
    assert (ws.repo / "a.txt").read_text() == "a"
    assert ws.is_clean()


def test_merge_conflict_is_refused_and_main_stays_clean(ws: ProjectWorkspace) -> None:
    one, two = ws.card_worktree(10), ws.card_worktree(11)
    (one / "same.txt").write_text("from card 10\n")
    (two / "same.txt").write_text("from card 11\n")
    ws.commit_card(10, seat="a", message="one")
    ws.commit_card(11, seat="b", message="two")
    ws.merge_card(10)
    before = ws.log("main")

    with pytest.raises(MergeConflict) as info:
        ws.merge_card(11)

    assert info.value.files == ["same.txt"]
    assert "card 11" in str(info.value) and "same.txt" in str(info.value)
    assert ws.log("main") == before
    assert ws.is_clean()
    assert (ws.repo / "same.txt").read_text() == "from card 10\n"


def test_merging_a_card_without_a_branch_fails_clearly(ws: ProjectWorkspace) -> None:
    with pytest.raises(WorkspaceError, match="no branch"):
        ws.merge_card(404)


def test_worktree_is_recreated_from_its_branch_after_removal(ws: ProjectWorkspace) -> None:
    path = ws.card_worktree(12)
    (path / "kept.txt").write_text("k")
    ws.commit_card(12, seat="a", message="keep")
    git(ws.repo, "worktree", "remove", "--force", str(path))

    again = ws.card_worktree(12)

    assert (again / "kept.txt").read_text() == "k"


@pytest.mark.parametrize("card_id", ["../x", "a/b", "", "-rf", "a b", True])
def test_unusable_card_ids_are_refused(ws: ProjectWorkspace, card_id: object) -> None:
    with pytest.raises(ValueError):
        ws.card_worktree(card_id)  # type: ignore[arg-type]


def test_unusable_seat_names_are_refused(ws: ProjectWorkspace) -> None:
    with pytest.raises(ValueError):
        ws.commit_card(1, seat="evil> <x", message="m")


def test_hooks_planted_in_a_worktree_do_not_run(ws: ProjectWorkspace, tmp_path: Path) -> None:
    path = ws.card_worktree(13)
    marker = tmp_path / "hook-ran"
    hooks = ws.repo / ".git" / "hooks"
    hook = hooks / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    (path / "x.txt").write_text("x")

    ws.commit_card(13, seat="a", message="x")

    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------------------
# The lock works across processes.


def _hold_lock(root: str, held: Event, release: Event) -> None:
    with ProjectWorkspace(Path(root)).lock():
        held.set()
        release.wait(30)


def _make_worktree(root: str, card: int) -> str:
    return str(ProjectWorkspace(Path(root)).card_worktree(card))


def test_lock_excludes_other_processes(ws: ProjectWorkspace) -> None:
    ctx = multiprocessing.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(ws.root), held, release))
    proc.start()
    try:
        assert held.wait(30)
        with pytest.raises(WorkspaceBusy), ws.lock(timeout=0.2):
            pass
        release.set()
        proc.join(30)
        started = time.monotonic()
        with ws.lock(timeout=5):
            assert time.monotonic() - started < 5
    finally:
        release.set()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0


def test_processes_creating_worktrees_at_once_do_not_clash(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        paths = pool.starmap(_make_worktree, [(str(root), card) for card in (1, 2, 1, 3, 2, 4, 1, 5)])

    ws = ProjectWorkspace(root)
    assert sorted(set(paths)) == sorted(str(root / "cards" / str(c)) for c in (1, 2, 3, 4, 5))
    branches = git(ws.repo, "branch", "--format=%(refname:short)").split()
    assert sorted(branches) == ["card/1", "card/2", "card/3", "card/4", "card/5", "main"]
    assert len(ws.log("main")) == 1
