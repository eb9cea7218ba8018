"""Reads of sandboxes that more than one caller needs (the API, the page). No Docker here: logs come
from what the worker stored (Docker) or the app's own log file (local process)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet

from boards.access import AnyUser, visible_projects
from sandboxes import local_sandbox
from sandboxes.instance import state_dir
from sandboxes.models import Backend, LogLine, LogStream, LogStreamKind, Sandbox, SandboxStatus
from sandboxes.services import LIVE_STATUSES, LOGS_FILE

MAX_TAIL = 2000


def sandboxes_for(
    user: AnyUser, *, project_id: int | None = None, status: str | None = None, include_deleted: bool = False
) -> QuerySet[Sandbox]:
    """Sandboxes of the projects the user is a member of (all of them for a superuser)."""
    queryset = Sandbox.objects.filter(project__in=visible_projects(user)).select_related("project", "card")
    if project_id is not None:
        queryset = queryset.filter(project_id=project_id)
    if status:
        queryset = queryset.filter(status=status)
    elif not include_deleted:
        queryset = queryset.exclude(status=SandboxStatus.DELETED)
    return queryset.order_by("-created_at", "-id")


def sandbox_logs(sandbox: Sandbox, *, tail: int = 200) -> dict[str, Any]:
    tail = max(1, min(tail, MAX_TAIL))
    folder = state_dir(sandbox)
    live = sandbox.backend == Backend.LOCAL and sandbox.status in LIVE_STATUSES
    path = folder / (local_sandbox.LOG_FILE if live else LOGS_FILE)
    try:
        captured = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
    except OSError:
        captured = None
    text = local_sandbox.log_tail(folder, tail) if live else _tail(path, tail)
    return {
        "sandbox": sandbox.pk,
        "status": sandbox.status,
        "tail": tail,
        "text": text,
        "captured_at": captured.isoformat() if captured else None,
    }


def _tail(path: Any, tail: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-tail:]) + ("\n" if lines else "")


# -- log streams -----------------------------------------------------------------------------------------------

MAX_LOG_PAGE = 1000


def log_streams_for(user: AnyUser, *, project_id: int | None = None) -> QuerySet[LogStream]:
    """Log streams of the projects the user can read."""
    queryset = LogStream.objects.filter(project__in=visible_projects(user))
    if project_id is not None:
        queryset = queryset.filter(project_id=project_id)
    return queryset.order_by("-created_at", "-id")


def log_lines_after(
    stream_id: int, after: int, *, until: int | None = None, limit: int = MAX_LOG_PAGE
) -> list[LogLine]:
    """The stream's lines numbered above `after` (and at most `until`), oldest first, at most `limit`."""
    lines = LogLine.objects.filter(stream_id=stream_id, seq__gt=after).order_by("seq")
    if until is not None:
        lines = lines.filter(seq__lte=until)
    return list(lines[: max(1, min(limit, MAX_LOG_PAGE))])


def sandbox_log_stream_id(sandbox_id: int) -> int | None:
    """The stream of a sandbox's service logs (one per sandbox), when it has one yet."""
    return (
        LogStream.objects.filter(sandbox_id=sandbox_id, kind=LogStreamKind.SERVICE)
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )


def with_log_streams(sandboxes: list[Sandbox]) -> list[Sandbox]:
    """The sandboxes, each with `log_stream_id` set (None when it has no stream), in one query."""
    found: dict[int, int] = {}
    for sandbox_id, stream_id in (
        LogStream.objects.filter(sandbox__in=sandboxes, kind=LogStreamKind.SERVICE)
        .order_by("-id")
        .values_list("sandbox_id", "pk")
    ):
        found[sandbox_id] = stream_id  # the oldest wins: ordered newest first
    for sandbox in sandboxes:
        sandbox.log_stream_id = found.get(sandbox.pk)  # type: ignore[attr-defined]
    return sandboxes
