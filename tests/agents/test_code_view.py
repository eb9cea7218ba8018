"""The pure part of the code view: git's diff output parsed into files, hunks and lines; highlighting as
token classes (never markup); binary and large files summarised. No database, no Django."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agents import code_view
from agents.workspaces import ProjectWorkspace

PATCH = """diff --git a/app.py b/app.py
index 1111111..2222222 100644
--- a/app.py
+++ b/app.py
@@ -1,4 +1,4 @@ def top():
 import os
-x = 1
+x = 2
+y = "<script>alert(1)</script>"
 print(x)
\\ No newline at end of file
diff --git a/old.txt b/new.txt
similarity index 90%
rename from old.txt
rename to new.txt
diff --git a/logo.png b/logo.png
new file mode 100644
index 0000000..3333333
Binary files /dev/null and b/logo.png differ
diff --git a/gone.md b/gone.md
deleted file mode 100644
index 4444444..0000000
--- a/gone.md
+++ /dev/null
@@ -1 +0,0 @@
-bye
"""
NUMSTAT = "2\t1\tapp.py\x000\t0\t\x00old.txt\x00new.txt\x00-\t-\tlogo.png\x000\t1\tgone.md\x00"


def test_a_patch_becomes_files_with_statuses_counts_and_numbered_lines() -> None:
    view = code_view.diff_view(NUMSTAT, PATCH, patch_cut=False)

    assert [(f.path, f.old_path, f.status, f.binary, f.added, f.removed) for f in view.files] == [
        ("app.py", "app.py", "modified", False, 2, 1),
        ("new.txt", "old.txt", "renamed", False, 0, 0),
        ("logo.png", "logo.png", "added", True, 0, 0),
        ("gone.md", "gone.md", "removed", False, 0, 1),
    ]
    lines = view.files[0].hunks[0].lines
    assert [(line.kind, line.old, line.new, line.text) for line in lines] == [
        ("context", 1, 1, "import os"),
        ("del", 2, None, "x = 1"),
        ("add", None, 2, "x = 2"),
        ("add", None, 3, 'y = "<script>alert(1)</script>"'),
        ("context", 3, 4, "print(x)"),
        ("note", None, None, "No newline at end of file"),
    ]
    assert view.files[0].hunks[0].header.startswith("@@ -1,4 +1,4 @@")
    assert not view.truncated


def test_highlighting_gives_class_names_and_the_text_unchanged_never_markup() -> None:
    view = code_view.diff_view(NUMSTAT, PATCH, patch_cut=False)
    code_view.highlight_diff(view)

    for line in view.files[0].hunks[0].lines:
        if line.kind != "note":
            assert "".join(text for _cls, text in line.tokens) == line.text
        for cls, _text in line.tokens:
            assert cls == "" or (cls.isalnum() and len(cls) <= 4)
    script = view.files[0].hunks[0].lines[3].tokens
    assert ["s2", '"<script>alert(1)</script>"'] in script  # a Python string, as text
    assert ["k", "import"] in view.files[0].hunks[0].lines[0].tokens or ["kn", "import"] in (
        view.files[0].hunks[0].lines[0].tokens
    )


def test_a_multi_line_string_is_coloured_as_a_string_on_every_line() -> None:
    rows = code_view.highlight_lines('x = """first\nsecond <b>\nthird"""\n', "a.py")

    assert len(rows) == 4 and rows[3] == []
    assert rows[1] == [["s2", "second <b>"]]


def test_an_unknown_file_type_stays_plain_text() -> None:
    assert code_view.highlight_lines("<script>x</script>\n\nz", "notes.unknownext") == [
        [["", "<script>x</script>"]],
        [],
        [["", "z"]],
    ]


def test_a_cut_patch_drops_its_incomplete_last_file_and_counts_what_is_not_shown() -> None:
    cut = PATCH.split("diff --git a/gone.md")[0] + "diff --git a/gone.md b/gone.md\ndeleted file mode 100644\n"
    view = code_view.diff_view(NUMSTAT, cut, patch_cut=True)

    assert [f.shown for f in view.files] == [True, True, True, False]
    assert (view.files_not_shown, view.lines_not_shown, view.truncated) == (1, 1, True)
    assert view.as_dict()["removed"] == 2  # the counts stay whole


def test_the_line_cap_leaves_out_whole_files_and_counts_them() -> None:
    view = code_view.diff_view(NUMSTAT, PATCH, patch_cut=False, max_lines=3)

    assert view.files[0].shown is False and view.files[0].hunks == []
    assert view.files[3].shown is True  # a later small file still fits
    assert (view.files_not_shown, view.lines_not_shown) == (1, 3)


def test_binary_and_large_files_are_summarised() -> None:
    binary = code_view.file_summary("img/logo.png", b"\x89PNG\r\n\x1a\n\x00\x00", 5000)
    assert (binary["kind"], binary["size"], binary["type"], binary["lines"]) == ("binary", 5000, "image/png", [])

    head = b"".join(b"line %d\n" % n for n in range(1000))
    large = code_view.file_summary("big.txt", head, 10 * 1024 * 1024)
    assert (large["kind"], large["truncated"], large["lines_shown"]) == ("large", True, 200)
    assert large["lines"][0] == [["", "line 0"]]

    many = b"x\n" * 6000
    short_lines = code_view.file_summary("many.txt", many, len(many))
    assert (short_lines["kind"], short_lines["lines_shown"]) == ("large", 200)

    text = code_view.file_summary("page.html", b"<script>alert(1)</script>\n", 26)
    assert (text["kind"], text["lines_shown"]) == ("text", 1)
    assert "".join(part for _cls, part in text["lines"][0]) == "<script>alert(1)</script>"


def test_utf8_cut_in_the_middle_of_a_character_is_still_text() -> None:
    assert not code_view.is_binary("é".encode() * 4000)
    assert not code_view.is_binary(("a" * 7999 + "é").encode())
    assert code_view.is_binary(b"abc\x00def")


def git(cwd: Path, *args: str) -> str:
    from agents.workspaces import git_env

    return subprocess.run(["git", *args], cwd=cwd, env=git_env(), check=True, capture_output=True, text=True).stdout


def test_the_workspace_diff_matches_git_and_finds_the_merge_base(tmp_path: Path) -> None:
    workspace = ProjectWorkspace(tmp_path / "ws")
    workspace.ensure()
    path = workspace.card_worktree(7)
    (path / "a.py").write_text("one\ntwo\n")
    workspace.commit_card(7, seat="coder", message="first")
    (path / "a.py").write_text("one\nTWO\nthree\n")
    workspace.commit_card(7, seat="coder", message="second")
    (workspace.repo / "main.txt").write_text("on main only\n")
    git(workspace.repo, "add", "main.txt")
    git(workspace.repo, "commit", "-qm", "main moves on")

    raw = workspace.diff("main", "card/7")
    view = code_view.diff_view(raw.numstat, raw.patch, patch_cut=raw.cut)

    assert [(f.path, f.status, f.added, f.removed) for f in view.files] == [("a.py", "added", 3, 0)]
    assert workspace.merged_from("main", "card/7") is None
    workspace.merge_card(7)
    before = workspace.merged_from("main", "card/7")
    assert before and workspace.diff(before, "card/7").numstat == raw.numstat
    assert workspace.diff("main", "card/7").numstat == ""
    cut = workspace.diff(before, "card/7", max_bytes=40)
    assert cut.cut and len(cut.patch) <= 40


def test_references_that_could_be_options_or_ranges_are_refused(tmp_path: Path) -> None:
    workspace = ProjectWorkspace(tmp_path / "ws")
    workspace.ensure()
    for bad in ("--output=/tmp/x", "main..main", "-p", "a b", ""):
        assert not workspace.has_ref(bad)
    assert workspace.has_ref("main")
