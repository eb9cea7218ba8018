"""Reads of sandboxes that more than one caller needs (the API, the page). No Docker here: logs come
from what the worker stored (Docker) or the app's own log file (local process)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet

from boards.access import AnyUser, visible_projects
from sandboxes import local_sandbox
from sandboxes.models import Backend, Sandbox, SandboxStatus
from sandboxes.services import LIVE_STATUSES, LOGS_FILE, state_dir

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
