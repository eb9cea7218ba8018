"""The sandboxes page of a project: list, status, URLs, open, logs, stop and delete."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import ensure_csrf_cookie

from boards.access import require_project_role, role_allows
from boards.errors import NotFound
from boards.models import Card, Project, ProjectRole
from sandboxes import selectors, services


@ensure_csrf_cookie
def project_sandboxes(request: HttpRequest, project_id: int) -> HttpResponse:
    try:
        role = require_project_role(request.user, project_id, ProjectRole.VIEWER)
    except NotFound as error:
        raise Http404(error.message) from error
    project = get_object_or_404(Project, pk=project_id)
    sandboxes = selectors.sandboxes_for(request.user, project_id=project.pk)
    conf = services.project_settings(project)
    context = {
        "project": project,
        "sandboxes": selectors.with_log_streams(list(sandboxes[:100])),
        "can_act": role_allows(role, ProjectRole.MEMBER),
        "cards": list(Card.objects.filter(project=project).exclude(status="canceled").order_by("-id")[:200]),
        "settings": conf,
        "backend": services.backend_choice(),
    }
    return render(request, "sandboxes/project_sandboxes.html", context)
