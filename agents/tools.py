"""The tools agents call. Each runs only after the gate allowed the call; card changes go through
the boards services, so the state machine rules apply to agents exactly as to people."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

from agents import safe_files
from agents.gate import check_path
from agents.notes import seat_note_add
from agents.safe_files import WorkspaceFileError
from boards import services as board_services
from boards.actors import Actor
from boards.errors import InvalidInput
from boards.models import Card, CardDependency, Comment
from orket_site.errors import OrketError
from sandboxes.commands import CommandRefused, card_tests_run, command_run

MAX_READ_BYTES = 1024 * 1024
MAX_LISTING = 500
MAX_COMMENTS_IN_CONTEXT = 20
SEARCH_MAX_MATCHES = 100
SEARCH_MAX_FILES = 5_000
SEARCH_MAX_FILE_BYTES = 1024 * 1024
SEARCH_LINE_CHARS = 300
SEARCH_SECONDS = 5.0


class ToolFailed(Exception):
    """A tool ran but could not do what was asked (missing file, refused transition)."""

    def __init__(self, message: str, *, rule: str = "tool_failed", governance: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.governance = governance


@dataclass
class ToolContext:
    card: Card
    actor: Actor
    workspace: Path
    seats: list[str]
    verification: Callable[[Card], dict[str, Any]]
    diff: Callable[[str], str] = lambda path: ""
    # Called as run_command / run_tests output is produced: on_output(stream, text), stream "stdout" or "stderr".
    on_output: Callable[[str, str], None] | None = None
    files_changed: set[str] = field(default_factory=set)
    status_changed_to: str | None = None
    finished: bool = False


def _checked(path: str, *, write: bool = False, allow_root: bool = False) -> str:
    """The path after the textual path policy; the file functions then never follow a link."""
    decision = check_path(path, write=write, allow_root=allow_root)
    if not decision.allowed:
        raise ToolFailed(decision.message, rule=decision.rule, governance=True)
    return path


@contextmanager
def _file_errors() -> Iterator[None]:
    """File errors become tool errors the agent can read, naming only workspace-relative paths."""
    try:
        yield
    except WorkspaceFileError as failed:
        governance = failed.reason == "symlink"
        raise ToolFailed(failed.message, rule=failed.reason, governance=governance) from None


def _read_text(context: ToolContext, path: str) -> str:
    with _file_errors():
        data = safe_files.read_bytes(str(context.workspace), _checked(path), limit=MAX_READ_BYTES)
    return data.decode("utf-8", errors="replace")


def _write_text(context: ToolContext, path: str, content: str) -> int:
    data = content.encode("utf-8", errors="replace")
    with _file_errors():
        safe_files.write_bytes(str(context.workspace), _checked(path, write=True), data)
    context.files_changed.add(path)
    return len(data)


def read_file(context: ToolContext, path: str) -> dict[str, Any]:
    return {"path": path, "content": _read_text(context, path)}


def write_file(context: ToolContext, path: str, content: str) -> dict[str, Any]:
    return {"path": path, "bytes": _write_text(context, path, content)}


def edit_file(context: ToolContext, path: str, old_text: str, new_text: str) -> dict[str, Any]:
    content = _read_text(context, path)
    found = content.count(old_text)
    if found == 0:
        raise ToolFailed(
            f"old_text was not found in {path}; read the file again and copy the text exactly, indentation included.",
            rule="edit_not_found",
        )
    if found > 1:
        raise ToolFailed(
            f"old_text occurs {found} times in {path}; include more of the surrounding lines so it occurs once.",
            rule="edit_not_unique",
        )
    updated = content.replace(old_text, new_text, 1)
    if len(updated.encode("utf-8", errors="replace")) > MAX_READ_BYTES:
        raise ToolFailed(f"After the edit {path} would be larger than {MAX_READ_BYTES} bytes.", rule="too_large")
    size = _write_text(context, path, updated)
    line = content[: content.index(old_text)].count("\n") + 1
    return {"path": path, "bytes": size, "replaced_at_line": line}


def list_directory(context: ToolContext, path: str = ".") -> dict[str, Any]:
    with _file_errors():
        entries = safe_files.list_folder(
            str(context.workspace), _checked(path or ".", allow_root=True), limit=MAX_LISTING
        )
    return {"path": path or ".", "entries": [entry.name + ("/" if entry.is_dir else "") for entry in entries]}


def delete_file(context: ToolContext, path: str, confirm: bool = False) -> dict[str, Any]:
    with _file_errors():
        safe_files.delete_file(str(context.workspace), _checked(path, write=True))
    context.files_changed.add(path)
    return {"path": path, "deleted": True}


def search_code(context: ToolContext, pattern: str, literal: bool = False, path: str = ".") -> dict[str, Any]:
    try:
        compiled = regex.compile(regex.escape(pattern) if literal else pattern)
    except regex.error as problem:
        raise ToolFailed(f"The pattern is not a valid regular expression: {problem}.", rule="bad_pattern") from None
    deadline = time.monotonic() + SEARCH_SECONDS
    matches: list[str] = []
    scanned = 0
    with _file_errors():
        for relative, folder in safe_files.walk_files(str(context.workspace), _checked(path or ".", allow_root=True)):
            scanned += 1
            if scanned > SEARCH_MAX_FILES or len(matches) > SEARCH_MAX_MATCHES:  # one more says: cut
                break
            data = safe_files.read_in_folder(folder, relative.rsplit("/", 1)[-1], limit=SEARCH_MAX_FILE_BYTES)
            if not data or b"\0" in data[:8192]:
                continue
            try:
                matches += _matching_lines(compiled, relative, data.decode("utf-8", errors="replace"), deadline)
            except TimeoutError:
                raise ToolFailed(
                    f"The search took longer than {SEARCH_SECONDS:g} s; use a simpler pattern or a smaller folder.",
                    rule="search_timeout",
                ) from None
    cut = len(matches) > SEARCH_MAX_MATCHES or scanned > SEARCH_MAX_FILES
    return {"pattern": pattern, "matches": matches[:SEARCH_MAX_MATCHES], "truncated": cut, "files_searched": scanned}


def _matching_lines(compiled: regex.Pattern[str], relative: str, text: str, deadline: float) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if compiled.search(line, timeout=remaining):
            shown = line if len(line) <= SEARCH_LINE_CHARS else line[:SEARCH_LINE_CHARS] + " [...]"
            found.append(f"{relative}:{number}: {shown}")
            if len(found) > SEARCH_MAX_MATCHES:
                break
    return found


def git_diff(context: ToolContext, path: str = "") -> dict[str, Any]:
    if path:
        _checked(path, allow_root=True)
    diff = context.diff(path)
    return {"path": path or ".", "diff": diff or "(no changes on this card yet)"}


def finish_turn(context: ToolContext, summary: str, remaining: str = "") -> dict[str, Any]:
    context.finished = True
    return {"finished": True, "summary": summary, "remaining": remaining}


def get_card_context(context: ToolContext) -> dict[str, Any]:
    card = Card.objects.select_related("epic").get(pk=context.card.pk)
    depends_on = list(
        CardDependency.objects.filter(card_id=card.pk).values_list(
            "depends_on_id", "depends_on__title", "depends_on__status"
        )
    )
    comments = list(
        Comment.objects.filter(card_id=card.pk)
        .order_by("-id")
        .values("author_seat", "author__username", "body")[:MAX_COMMENTS_IN_CONTEXT]
    )
    return {
        "id": card.pk,
        "title": card.title,
        "status": card.status,
        "epic": card.epic.name,
        "description": card.description,
        "requirements": card.requirements,
        "acceptance_criteria": card.acceptance_criteria,
        "labels": card.labels,
        "depends_on": [{"id": i, "title": t, "status": s} for i, t, s in depends_on],
        "comments": [
            {"by": c["author_seat"] or c["author__username"] or "", "body": c["body"]} for c in reversed(comments)
        ],
        "last_verification": card.last_verification,
    }


def _board_call(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except OrketError as refused:
        raise ToolFailed(refused.message, rule=refused.code, governance=True) from refused


def add_comment(context: ToolContext, body: str) -> dict[str, Any]:
    comment = _board_call(lambda: board_services.comment_add(card=context.card, actor=context.actor, body=body))
    return {"comment": comment.pk}


def update_card_status(context: ToolContext, status: str, wait_reason: str = "", reason: str = "") -> dict[str, Any]:
    card = _board_call(
        lambda: board_services.card_transition(
            card=context.card, to_status=status, actor=context.actor, wait_reason=wait_reason, reason=reason
        )
    )
    context.status_changed_to = card.status
    return {"card": card.pk, "status": card.status}


def create_card(
    context: ToolContext, summary: str, description: str = "", seat: str = "", depends_on: list[int] | None = None
) -> dict[str, Any]:
    def create() -> Card:
        card = board_services.card_create(
            epic=context.card.epic, actor=context.actor, title=summary, description=description, seat=seat
        )
        for prerequisite in Card.objects.filter(pk__in=depends_on or [], epic_id=context.card.epic_id):
            board_services.dependency_add(card=card, depends_on=prerequisite, actor=context.actor)
        return card

    card = _board_call(create)
    return {"card": card.pk, "title": card.title}


def add_note(context: ToolContext, body: str, to_seat: str = "all") -> dict[str, Any]:
    if to_seat != "all" and to_seat not in context.seats:
        raise ToolFailed(f"There is no seat {to_seat!r} in this team; use one of {', '.join(context.seats)} or all.")
    note = seat_note_add(card_id=context.card.pk, from_seat=context.actor.seat, to_seat=to_seat, body=body)
    return {"note": note.pk, "to_seat": to_seat}


def run_verification(context: ToolContext) -> dict[str, Any]:
    return context.verification(context.card)


@contextmanager
def _command_errors() -> Iterator[None]:
    """A refused or impossible command becomes a failed call whose message the agent reads."""
    try:
        yield
    except (CommandRefused, InvalidInput) as problem:
        raise ToolFailed(problem.message, rule=problem.code) from None


def run_command(context: ToolContext, argv: list[str], workdir: str = ".") -> dict[str, Any]:
    if workdir not in ("", "."):
        _checked(workdir, allow_root=True)
    with _command_errors():
        outcome = command_run(card=context.card, argv=argv, workdir=workdir or ".", on_output=context.on_output)
    return outcome.for_agent()


def run_tests(context: ToolContext, path: str = "", args: list[str] | None = None) -> dict[str, Any]:
    if path not in ("", "."):
        _checked(path, allow_root=True)
    with _command_errors():
        return card_tests_run(
            card=context.card,
            requested_by=context.actor.seat or "agent",
            path=path,
            args=list(args or []),
            on_output=context.on_output,
        )


TOOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "read_file": read_file,
    "write_file": write_file,
    "list_directory": list_directory,
    "delete_file": delete_file,
    "get_card_context": get_card_context,
    "add_comment": add_comment,
    "update_card_status": update_card_status,
    "create_card": create_card,
    "add_note": add_note,
    "run_verification": run_verification,
    "search_code": search_code,
    "edit_file": edit_file,
    "git_diff": git_diff,
    "finish_turn": finish_turn,
    "run_command": run_command,
    "run_tests": run_tests,
}


def execute_tool(context: ToolContext, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run one gate-approved call. Raises ToolFailed when the tool could not do it."""
    return TOOLS[name](context, **arguments)
