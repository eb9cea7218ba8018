"""The source repository's settings page and API. Thin: they check the role, call one service and
shape the answer. Members and viewers read where the clone stands; maintainers change the source."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from agents.gitea.models import GiteaLink
from agents.models import EpicAgentSettings
from agents.sources import services
from agents.sources.models import SourceKind, SourceRepository
from boards.access import require_project_role, role_allows, role_or_404, visible_projects
from boards.models import Epic, Project, ProjectRole
from orket_site.errors import OrketError

STATUS_FIELDS = [
    "kind",
    "url",
    "local_path",
    "token_env",
    "state",
    "progress",
    "progress_phase",
    "error",
    "default_branch",
    "head_sha",
    "cloned_at",
    "fetched_at",
    "fetch_error",
    "updated_at",
]


class SourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = SourceRepository
        fields = STATUS_FIELDS
        read_only_fields = STATUS_FIELDS


class SourceInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=SourceKind.values)
    url = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    path = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    token_env = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class BaseBranchSerializer(serializers.Serializer):
    base_branch = serializers.CharField(max_length=200, allow_blank=True)


def _status(project_id: int) -> dict[str, Any]:
    source = SourceRepository.objects.filter(project_id=project_id).first()
    if source is None:
        return {"kind": None, "state": "none"}
    return dict(SourceSerializer(source).data)


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------


@extend_schema(request=SourceInputSerializer, responses=SourceSerializer)
@api_view(["GET", "PUT", "DELETE"])
def source_api(request: Request, project_id: int) -> Response:
    """GET (viewers and up) where the source and its clone stand; PUT (maintainers) set it and start
    the clone (202); DELETE (maintainers) forget it."""
    if request.method == "GET":
        require_project_role(request.user, project_id, ProjectRole.VIEWER)
        return Response(_status(project_id))
    require_project_role(request.user, project_id, ProjectRole.MAINTAINER)
    project = Project.objects.get(pk=project_id)
    if request.method == "DELETE":
        services.source_repository_clear(project=project, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
    given = SourceInputSerializer(data=request.data)
    given.is_valid(raise_exception=True)
    services.source_repository_set(project=project, user=request.user, **given.validated_data)
    return Response(_status(project_id), status=status.HTTP_202_ACCEPTED)


@extend_schema(request=BaseBranchSerializer, responses=BaseBranchSerializer)
@api_view(["GET", "PUT"])
def epic_base_branch_api(request: Request, epic_id: int) -> Response:
    """GET (viewers) or PUT (maintainers) the branch the epic's cards start from ("" for the default)."""
    epic = get_object_or_404(Epic.objects.filter(project__in=visible_projects(request.user)), pk=epic_id)
    if request.method == "GET":
        require_project_role(request.user, epic.project_id, ProjectRole.VIEWER)
        return Response({"base_branch": services.epic_base_branch(epic.pk)})
    require_project_role(request.user, epic.project_id, ProjectRole.MAINTAINER)
    given = BaseBranchSerializer(data=request.data)
    given.is_valid(raise_exception=True)
    saved = services.epic_base_branch_set(epic=epic, base_branch=given.validated_data["base_branch"])
    return Response({"base_branch": saved.base_branch})


# ---------------------------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------------------------


def _post(request: HttpRequest, project: Project) -> str:
    section = request.POST.get("section", "source")
    if section == "epic":
        epic = Epic.objects.filter(pk=str(request.POST.get("epic", "")).strip() or 0, project=project).first()
        if epic is None:
            raise services.SourceInvalid("There is no such epic in this project.")
        services.epic_base_branch_set(epic=epic, base_branch=str(request.POST.get("base_branch", "")))
        return f"Base branch of {epic.name} saved."
    if section == "clear":
        services.source_repository_clear(project=project, user=request.user)
        return "The source repository was removed; the next run starts an empty workspace."
    services.source_repository_set(
        project=project,
        user=request.user,
        kind=str(request.POST.get("kind", "")),
        url=str(request.POST.get("url", ""))[:500],
        path=str(request.POST.get("path", ""))[:1000],
        token_env=str(request.POST.get("token_env", ""))[:100],
    )
    return "Source saved; cloning has started."


def source_settings_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """/projects/<id>/settings/source/: the source, its clone's progress, and the epics' base branches."""
    role = role_or_404(request, project_id)
    project = get_object_or_404(Project, pk=project_id)
    can_edit = role_allows(role, ProjectRole.MAINTAINER)
    problems: list[str] = []
    code = 200
    if request.method == "POST":
        if not can_edit:
            problems, code = ["Only maintainers change the source repository."], 403
        else:
            try:
                done = _post(request, project)
            except OrketError as error:
                problems, code = [error.message], error.status
            else:
                messages.success(request, done)
                return redirect("source-settings-page", project_id=project.pk)
    bases = dict(EpicAgentSettings.objects.filter(epic__project=project).values_list("epic_id", "base_branch"))
    context = {
        "project": project,
        "role": role,
        "can_edit": can_edit,
        "source": SourceRepository.objects.filter(project=project).first(),
        "linked": GiteaLink.objects.filter(project=project).first(),
        "epics": [
            (epic, bases.get(epic.pk, "")) for epic in Epic.objects.filter(project=project).order_by("rank", "pk")
        ],
        "status_url": reverse("api-source", args=[project.pk]),
        "problems": problems,
        "posted": request.POST if problems else None,
    }
    return render(request, "agents/source_settings.html", context, status=code)
