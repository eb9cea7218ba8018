"""The tools agents call. Each runs only after the gate allowed the call; card changes go through
the boards services, so the state machine rules apply to agents exactly as to people."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.gate import PathRefused, resolve_in_workspace
from agents.models import SeatNote
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, CardDependency, Comment
from orket_site.errors import OrketError

MAX_READ_BYTES = 1024 * 1024
MAX_LISTING = 500
MAX_COMMENTS_IN_CONTEXT = 20


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
    files_changed: set[str] = field(default_factory=set)
    status_changed_to: str | None = None


def _path(context: ToolContext, raw: str, *, write: bool = False, allow_root: bool = False) -> Path:
    try:
        return resolve_in_workspace(context.workspace, raw, write=write, allow_root=allow_root)
    except PathRefused as refused:
        raise ToolFailed(refused.message, rule=refused.rule, governance=True) from refused


def read_file(context: ToolContext, path: str) -> dict[str, Any]:
    target = _path(context, path)
    if not target.is_file():
        raise ToolFailed(f"{path} does not exist or is not a file.", rule="not_found")
    data = target.read_bytes()
    if len(data) > MAX_READ_BYTES:
        raise ToolFailed(f"{path} is larger than {MAX_READ_BYTES} bytes.", rule="too_large")
    return {"path": path, "content": data.decode("utf-8", errors="replace")}


def write_file(context: ToolContext, path: str, content: str) -> dict[str, Any]:
    target = _path(context, path, write=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    context.files_changed.add(path)
    return {"path": path, "bytes": len(content.encode("utf-8"))}


def list_directory(context: ToolContext, path: str = ".") -> dict[str, Any]:
    target = _path(context, path or ".", allow_root=True)
    if not target.is_dir():
        raise ToolFailed(f"{path} is not a directory.", rule="not_found")
    entries = []
    for child in sorted(target.iterdir()):
        if child.name == ".git":
            continue
        entries.append(child.name + ("/" if child.is_dir() else ""))
        if len(entries) >= MAX_LISTING:
            break
    return {"path": path or ".", "entries": entries}


def delete_file(context: ToolContext, path: str, confirm: bool = False) -> dict[str, Any]:
    target = _path(context, path, write=True)
    if not target.is_file():
        raise ToolFailed(f"{path} does not exist or is not a file.", rule="not_found")
    target.unlink()
    context.files_changed.add(path)
    return {"path": path, "deleted": True}


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
    note = SeatNote.objects.create(card=context.card, from_seat=context.actor.seat, to_seat=to_seat, body=body)
    return {"note": note.pk, "to_seat": to_seat}


def run_verification(context: ToolContext) -> dict[str, Any]:
    return context.verification(context.card)


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
}


def execute_tool(context: ToolContext, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run one gate-approved call. Raises ToolFailed when the tool could not do it."""
    return TOOLS[name](context, **arguments)
