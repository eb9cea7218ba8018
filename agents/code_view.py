"""What the browser shows of a card's code: git's diff output parsed into files, hunks and lines, file
contents summarised when they are binary or large, and syntax highlighting as token classes.

Highlighting never produces markup: a line is a list of [css class, text] pairs (Pygments' short class
names, "" for plain text) that the browser puts into spans with textContent, so a file holding `<script>`
shows as text. Pure Python, no Django.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from typing import Any

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_for_filename
from pygments.token import STANDARD_TYPES, Token, _TokenType
from pygments.util import ClassNotFound

MAX_DIFF_LINES = 5000  # diff lines sent to the browser for one request, over all files
MAX_HIGHLIGHT_CHARS = 200_000  # text longer than this (one side of a file's diff, or a file) stays plain
BINARY_SNIFF_BYTES = 8000  # as git: a NUL byte in the first 8000 bytes makes a file binary
MAX_SHOWN_FILE_BYTES = 256 * 1024  # a larger file shows only its first lines
MAX_SHOWN_FILE_LINES = 5000  # and so does a file of more lines than this
LARGE_FILE_HEAD_LINES = 200

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")

Tokens = list[list[str]]


@dataclass
class DiffLine:
    kind: str  # "context", "add", "del" or "note" (git's "\ No newline at end of file")
    text: str
    old: int | None = None
    new: int | None = None
    tokens: Tokens | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "old": self.old, "new": self.new, "tokens": self.tokens}


@dataclass
class Hunk:
    header: str
    old_start: int
    new_start: int
    lines: list[DiffLine] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "header": self.header,
            "old_start": self.old_start,
            "new_start": self.new_start,
            "lines": [line.as_dict() for line in self.lines],
        }


@dataclass
class FilePatch:
    """One file's section of `git diff` output: what happened to it and its hunks."""

    status: str = "modified"  # added, removed, renamed, copied, modified
    binary: bool = False
    hunks: list[Hunk] = field(default_factory=list)


@dataclass
class FileStat:
    """One entry of `git diff --numstat -z`: counts (None for a binary file) and the paths."""

    added: int | None
    removed: int | None
    old_path: str
    new_path: str


@dataclass
class DiffFile:
    path: str
    old_path: str
    status: str
    binary: bool
    added: int
    removed: int
    hunks: list[Hunk]
    shown: bool = True  # False when the size cap left its hunks out

    @property
    def line_count(self) -> int:
        return sum(len(hunk.lines) for hunk in self.hunks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old_path": self.old_path,
            "status": self.status,
            "binary": self.binary,
            "added": self.added,
            "removed": self.removed,
            "shown": self.shown,
            "hunks": [hunk.as_dict() for hunk in self.hunks],
        }


@dataclass
class DiffView:
    files: list[DiffFile]
    files_not_shown: int = 0
    lines_not_shown: int = 0

    @property
    def truncated(self) -> bool:
        return bool(self.files_not_shown or self.lines_not_shown)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": [item.as_dict() for item in self.files],
            "added": sum(item.added for item in self.files),
            "removed": sum(item.removed for item in self.files),
            "truncated": self.truncated,
            "files_not_shown": self.files_not_shown,
            "lines_not_shown": self.lines_not_shown,
        }


# -- parsing git's output ---------------------------------------------------------------------------------


def parse_numstat(text: str) -> list[FileStat]:
    """`git diff --numstat -z` output: "A\\tR\\tpath\\0", or "A\\tR\\t\\0old\\0new\\0" for a rename or copy;
    "-" counts mark a binary file."""
    fields = text.split("\0")
    stats: list[FileStat] = []
    index = 0
    while index < len(fields):
        head = fields[index]
        index += 1
        if not head:
            continue
        added, removed, path = head.split("\t", 2)
        old_path = new_path = path
        if not path:
            old_path, new_path = fields[index], fields[index + 1]
            index += 2
        stats.append(FileStat(_count(added), _count(removed), old_path, new_path))
    return stats


def _count(value: str) -> int | None:
    return None if value == "-" else int(value)


def parse_patch(text: str) -> list[FilePatch]:
    """The files of `git diff` patch output, in order; a patch cut short ends with its last whole line."""
    patches: list[FilePatch] = []
    current: FilePatch | None = None
    hunk: Hunk | None = None
    old = new = 0
    for line in text.split("\n"):
        if line.startswith("diff --git "):
            current, hunk = FilePatch(), None
            patches.append(current)
            continue
        if current is None:
            continue
        if hunk is None:
            match = _HUNK.match(line)
            if match:
                old, new = int(match.group(1)), int(match.group(3))
                hunk = Hunk(header=line, old_start=old, new_start=new)
                current.hunks.append(hunk)
            elif line.startswith("new file mode"):
                current.status = "added"
            elif line.startswith("deleted file mode"):
                current.status = "removed"
            elif line.startswith("rename from "):
                current.status = "renamed"
            elif line.startswith("copy from "):
                current.status = "copied"
            elif line.startswith("Binary files ") or line == "GIT binary patch":
                current.binary = True
            continue
        match = _HUNK.match(line)
        if match:
            old, new = int(match.group(1)), int(match.group(3))
            hunk = Hunk(header=line, old_start=old, new_start=new)
            current.hunks.append(hunk)
        elif line.startswith("+"):
            hunk.lines.append(DiffLine("add", line[1:], new=new))
            new += 1
        elif line.startswith("-"):
            hunk.lines.append(DiffLine("del", line[1:], old=old))
            old += 1
        elif line.startswith(" "):
            hunk.lines.append(DiffLine("context", line[1:], old=old, new=new))
            old, new = old + 1, new + 1
        elif line.startswith("\\"):
            hunk.lines.append(DiffLine("note", line[2:] if line.startswith("\\ ") else line[1:]))
    return patches


def diff_view(numstat: str, patch: str, *, patch_cut: bool, max_lines: int = MAX_DIFF_LINES) -> DiffView:
    """The files of a diff with their counts (from numstat, complete) and hunks (from the patch, which may
    have been cut at a size), at most `max_lines` diff lines in all; the rest is counted as not shown."""
    stats = parse_numstat(numstat)
    patches = parse_patch(patch)
    if patch_cut and patches:
        patches.pop()  # the last file's section may be incomplete
    files: list[DiffFile] = []
    budget = max_lines
    files_not_shown = lines_not_shown = 0
    for index, stat in enumerate(stats):
        piece = patches[index] if index < len(patches) else None
        binary = stat.added is None or (piece is not None and piece.binary)
        item = DiffFile(
            path=stat.new_path,
            old_path=stat.old_path,
            status=piece.status if piece else _status_from_paths(stat),
            binary=binary,
            added=stat.added or 0,
            removed=stat.removed or 0,
            hunks=piece.hunks if piece else [],
            shown=piece is not None,
        )
        if item.shown and item.line_count > budget:
            item.hunks, item.shown = [], False
        if not item.shown and not binary:
            files_not_shown += 1
            lines_not_shown += item.added + item.removed
        budget -= item.line_count
        files.append(item)
    return DiffView(files=files, files_not_shown=files_not_shown, lines_not_shown=lines_not_shown)


def _status_from_paths(stat: FileStat) -> str:
    return "renamed" if stat.old_path != stat.new_path else "modified"


# -- highlighting -----------------------------------------------------------------------------------------


def lexer_for(path: str) -> Lexer | None:
    """Pygments' lexer for a file name, or None (plain text) when there is none."""
    name = path.rsplit("/", 1)[-1]
    try:
        return get_lexer_for_filename(name, stripnl=False, stripall=False, ensurenl=False)
    except ClassNotFound:
        return None


def token_class(kind: _TokenType) -> str:
    """The short CSS class Pygments gives a token type (its nearest typed parent's), "" for plain text."""
    while kind is not Token and kind not in STANDARD_TYPES:
        kind = kind.parent
    return STANDARD_TYPES.get(kind, "") if kind is not Token else ""


def highlight_lines(text: str, path: str) -> list[Tokens]:
    """`text` split into lines, each a list of [class, text] pairs; plain when no lexer fits or it is long."""
    lines = text.split("\n")
    lexer = lexer_for(path)
    if lexer is None or len(text) > MAX_HIGHLIGHT_CHARS:
        return [[["", line]] if line else [] for line in lines]
    result: list[Tokens] = [[]]
    for kind, value in lexer.get_tokens(text):
        css = token_class(kind)
        parts = value.split("\n")
        for number, part in enumerate(parts):
            if number:
                result.append([])
            if not part:
                continue
            row = result[-1]
            if row and row[-1][0] == css:
                row[-1][1] += part
            else:
                row.append([css, part])
    # The lexer may add or drop a final newline; the line count follows the text.
    result = result[: len(lines)]
    while len(result) < len(lines):
        result.append([["", lines[len(result)]]] if lines[len(result)] else [])
    return result


def highlight_diff(view: DiffView) -> None:
    """Give each shown line its tokens. A hunk's new side (context and added lines) and its old side
    (context and removed lines) are each lexed as a whole, so a line inside a multi-line string is
    coloured as such; the removed lines take their tokens from the old side."""
    for item in view.files:
        for hunk in item.hunks:
            _colour(hunk.lines, ("context", "add"), ("context", "add"), item.path)
            if any(line.kind == "del" for line in hunk.lines):
                _colour(hunk.lines, ("context", "del"), ("del",), item.path)
            for line in hunk.lines:
                if line.tokens is None:
                    line.tokens = [["", line.text]] if line.text else []


def _colour(lines: list[DiffLine], read: tuple[str, ...], keep: tuple[str, ...], path: str) -> None:
    side = [line for line in lines if line.kind in read]
    if not side:
        return
    for line, tokens in zip(side, highlight_lines("\n".join(line.text for line in side), path), strict=True):
        if line.kind in keep:
            line.tokens = tokens


# -- file contents ----------------------------------------------------------------------------------------


def is_binary(head: bytes) -> bool:
    """Binary as git decides it: a NUL byte in the first 8000 bytes; or text that is not UTF-8."""
    sample = head[:BINARY_SNIFF_BYTES]
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as error:
        # a multi-byte character cut by the sample's end is still text
        return error.start < len(sample) - 3
    return False


def file_summary(path: str, head: bytes, size: int) -> dict[str, Any]:
    """What the browser shows of a file whose first bytes are `head` and whose size is `size`: a binary
    file's size and type; a text file's lines (only the first ones of a large file), highlighted."""
    kind, _ = mimetypes.guess_type(path.rsplit("/", 1)[-1])
    summary: dict[str, Any] = {"path": path, "size": size, "type": kind or ""}
    if is_binary(head):
        summary.update(kind="binary", type=kind or "application/octet-stream", lines=[], truncated=False)
        return summary
    text = head.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "" and size <= len(head):
        lines.pop()
    large = size > MAX_SHOWN_FILE_BYTES or len(lines) > MAX_SHOWN_FILE_LINES
    if large:
        lines = lines[:LARGE_FILE_HEAD_LINES]
    summary.update(
        kind="large" if large else "text",
        truncated=large,
        lines=highlight_lines("\n".join(lines), path),
        lines_shown=len(lines),
    )
    return summary
