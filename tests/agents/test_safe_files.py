"""The file tools never follow a symbolic link, even one swapped in while they work.

A check of the path followed by a write is a race: a link planted between the two leads the write
outside the workspace. These tests plant links before and during the tools' work and look for
anything that reached the folder next to the workspace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agents import safe_files
from agents.tools import ToolContext, ToolFailed, delete_file, edit_file, list_directory, read_file, write_file

RACING_WRITES = 3000


@pytest.fixture
def arena(tmp_path: Path) -> tuple[Path, Path]:
    workspace, outside = tmp_path / "workspace", tmp_path / "outside"
    workspace.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("the server's own file\n")
    return workspace, outside


def context(workspace: Path) -> ToolContext:
    return ToolContext(card=None, actor=None, workspace=workspace, seats=[], verification=lambda card: {})


SWAPPER = """
import ctypes, os, sys
workspace, outside = sys.argv[1], sys.argv[2]
sub, link = os.fsencode(workspace + "/sub"), os.fsencode(workspace + "/sub.link")
os.makedirs(sub, exist_ok=True)
os.symlink(outside, link)
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
open(workspace + "/ready", "w").close()
while True:  # sub and sub.link trade places atomically: sub is a real folder, then a link, and so on
    libc.renameat2(AT_FDCWD, sub, AT_FDCWD, link, RENAME_EXCHANGE)
"""


@contextmanager
def swapping(workspace: Path, outside: Path) -> Iterator[None]:
    """Another process turns workspace/sub back and forth between a real folder and a link to the
    outside folder, as fast as it can, as a hostile program inside a sandbox would."""
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(workspace), str(outside)])
    try:
        deadline = time.monotonic() + 10
        while not (workspace / "ready").exists():
            assert time.monotonic() < deadline, "the swapper did not start"
            time.sleep(0.01)
        yield
    finally:
        swapper.kill()
        swapper.wait()


def test_racing_symlinks_never_lead_a_write_outside(arena: tuple[Path, Path]) -> None:
    workspace, outside = arena
    written = refused = 0
    with swapping(workspace, outside):
        for number in range(RACING_WRITES):
            try:
                write_file(context(workspace), f"sub/file{number}.txt", "agent output\n")
                written += 1
            except ToolFailed as failed:
                refused += 1
                assert str(workspace) not in failed.message and str(outside) not in failed.message
    assert sorted(path.name for path in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "the server's own file\n"
    assert written + refused == RACING_WRITES
    assert written > 0  # the race really ran: some writes found the real folder


def test_racing_symlinks_never_lead_a_read_outside(arena: tuple[Path, Path]) -> None:
    workspace, outside = arena
    read = 0
    with swapping(workspace, outside):
        for _ in range(1000):  # lands in the real folder at a moment it is one
            try:
                write_file(context(workspace), "sub/secret.txt", "inside\n")
                break
            except ToolFailed:
                continue
        for _ in range(RACING_WRITES):
            try:
                content = read_file(context(workspace), "sub/secret.txt")["content"]
            except ToolFailed:
                continue
            read += 1
            assert content == "inside\n"
    assert read > 0


def test_a_planted_link_as_the_file_is_replaced_not_followed(arena: tuple[Path, Path]) -> None:
    workspace, outside = arena
    os.symlink(outside / "secret.txt", workspace / "notes.txt")

    with pytest.raises(ToolFailed) as read_refused:
        read_file(context(workspace), "notes.txt")
    write_file(context(workspace), "notes.txt", "mine\n")

    assert read_refused.value.rule == "symlink"
    assert (outside / "secret.txt").read_text() == "the server's own file\n"
    assert not (workspace / "notes.txt").is_symlink()
    assert (workspace / "notes.txt").read_text() == "mine\n"


def test_links_to_folders_are_never_entered(arena: tuple[Path, Path]) -> None:
    workspace, outside = arena
    os.symlink(outside, workspace / "docs")
    tools = context(workspace)

    for action in (
        lambda: write_file(tools, "docs/new.txt", "x"),
        lambda: read_file(tools, "docs/secret.txt"),
        lambda: edit_file(tools, "docs/secret.txt", "server", "agent"),
        lambda: delete_file(tools, "docs/secret.txt", confirm=True),
        lambda: list_directory(tools, "docs"),
    ):
        with pytest.raises(ToolFailed) as refused:
            action()
        assert str(outside) not in refused.value.message
    assert sorted(path.name for path in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "the server's own file\n"


def test_deleting_a_link_removes_the_link_only(arena: tuple[Path, Path]) -> None:
    workspace, outside = arena
    os.symlink(outside / "secret.txt", workspace / "alias.txt")

    delete_file(context(workspace), "alias.txt", confirm=True)

    assert not (workspace / "alias.txt").exists()
    assert (outside / "secret.txt").read_text() == "the server's own file\n"


def test_os_errors_become_tool_errors_without_server_paths(arena: tuple[Path, Path]) -> None:
    workspace, _ = arena
    (workspace / "services").write_text("a file where a folder is expected\n")
    (workspace / "folder").mkdir()
    tools = context(workspace)

    problems = []
    for action in (
        lambda: write_file(tools, "services/x.py", "x"),
        lambda: read_file(tools, "missing/x.py"),
        lambda: list_directory(tools, "services"),
        lambda: write_file(tools, "folder", "x"),
        lambda: read_file(tools, "folder"),
    ):
        with pytest.raises(ToolFailed) as failed:
            action()
        problems.append(failed.value.message)

    assert all(str(workspace) not in message and "/tmp" not in message for message in problems), problems
    assert (workspace / "folder").is_dir()


def test_walk_files_lists_regular_files_in_order_without_links_or_git(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b" / "c.txt").write_text("c")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    os.symlink(tmp_path / "a.txt", tmp_path / "link.txt")
    os.symlink(tmp_path / "b", tmp_path / "linked_folder")

    found = [path for path, _ in safe_files.walk_files(str(tmp_path), ".")]

    assert found == ["a.txt", "b/c.txt"]
    assert [path for path, _ in safe_files.walk_files(str(tmp_path), "b")] == ["b/c.txt"]
    assert [path for path, _ in safe_files.walk_files(str(tmp_path), "b/c.txt")] == ["b/c.txt"]
