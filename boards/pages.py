"""Browser pages of the boards app: the kanban board of a project.

The page is a thin shell: it checks the viewer's role, picks the epic and hands the page script
(static/orket/board.js) the ids and API addresses it needs. Cards, moves, comments and history all
go through the REST API, and live changes arrive on the project's board WebSocket.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from boards import machine
from boards.access import role_allows, role_or_404
from boards.models import STATUS_CHOICES, Epic, Project, ProjectRole

BOARD_STATUSES = list(machine.statuses_for(machine.ISSUE))
FILTER_NAMES = ("seat", "label", "priority", "status", "blocked", "q")
# View choices kept in the address besides the filters: swimlanes by epic, and unfolding canceled cards.
VIEW_NAMES = ("lanes", "canceled")


def _transitions() -> dict[str, list[str]]:
    """The issue transition table, from the one module that holds the rules."""
    return {
        status: [target for target in BOARD_STATUSES if target in machine.allowed_targets(machine.ISSUE, status)]
        for status in BOARD_STATUSES
    }


def _board_config(
    project: Project, epic: Epic | None, epics: list[Epic], role: str, filters: dict[str, str]
) -> dict[str, Any]:
    return {
        "project": project.pk,
        "epic": epic.pk if epic else None,
        "epics": [{"id": item.pk, "name": item.name, "team": item.team or "standard"} for item in epics],
        "canAct": role_allows(role, ProjectRole.MEMBER),
        "statuses": BOARD_STATUSES,
        "statusLabels": dict(STATUS_CHOICES),  # the model's choices: the page keeps no copy of its own
        "waitReasons": [{"name": name, "text": text} for name, text in machine.WAIT_REASONS.items()],
        "transitions": _transitions(),
        "filters": filters,
        "ws": f"/ws/projects/{project.pk}/",
        "api": {
            "cards": reverse("card-list"),
            "settings": reverse("project-settings", args=[project.pk]),
            "projectBoard": reverse("project-board-api", args=[project.pk]),
            "teams": reverse("team-list"),
            "runs": reverse("run-list"),
            "epic": "/api/epics/",
        },
        "runsPage": reverse("project-runs", args=[project.pk]),
        "runView": "/runs/",
    }


def board(request: HttpRequest, project_id: int) -> HttpResponse:
    """The kanban board of one epic of a project (`?epic=<id>`, default the first epic)."""
    role = role_or_404(request, project_id)
    project = get_object_or_404(Project, pk=project_id)
    every_epic = list(Epic.objects.filter(project=project).order_by("rank", "id"))
    epics = [item for item in every_epic if item.archived_at is None]
    epic: Epic | None = epics[0] if epics else None
    epic_param = request.GET.get("epic", "").strip()
    if epic_param:  # an archived epic is still shown when asked for by its id
        epic = next((item for item in every_epic if str(item.pk) == epic_param), None)
        if epic is None:
            raise Http404("No such epic in this project.")
        if epic not in epics:
            epics.append(epic)
    filters = {name: request.GET.get(name, "").strip()[:200] for name in FILTER_NAMES}
    view = {
        "lanes": "epic" if request.GET.get("lanes", "") == "epic" else "",
        "canceled": "1" if request.GET.get("canceled", "") in ("1", "true", "yes", "on") else "",
    }
    config = _board_config(project, epic, epics, role, filters)
    config["view"] = view
    context = {"project": project, "epic": epic, "epics": epics, "config": config, "filters": filters, "view": view}
    return render(request, "boards/board.html", context)
