"""Endpoints of tool calls waiting for a person and of answering a waiting card.

Viewers of the project read; members decide and answer; maintainers choose which tools need approval.
Another project's approval or card is 404, as if it did not exist.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from agents import approvals
from agents.models import Run, ToolApproval, approval_tools_for
from boards.access import require_project_role, visible_projects
from boards.api.permissions import ProjectRolePermission
from boards.models import Card, Project, ProjectRole


class DecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "reject"])
    reason = serializers.CharField(required=False, allow_blank=True, max_length=approvals.MAX_REASON_CHARS)


class AnswerSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=20_000)


class ApprovalToolsSerializer(serializers.Serializer):
    tools = serializers.ListField(child=serializers.CharField(max_length=80), max_length=100, allow_empty=True)


def _visible_card(request: Request, card_id: int) -> Card:
    return get_object_or_404(Card.objects.filter(project__in=visible_projects(request.user)), pk=card_id)


@extend_schema(responses={200: dict})
@api_view(["GET"])
@permission_classes([ProjectRolePermission])
def card_waiting(request: Request, card_id: int) -> Response:
    """What the card waits for: its question, its tool calls waiting for approval (and decided ones), the run."""
    card = _visible_card(request, card_id)
    return Response(approvals.card_waiting(card))


@extend_schema(responses={200: dict})
@api_view(["GET"])
@permission_classes([ProjectRolePermission])
def run_approvals(request: Request, run_id: int) -> Response:
    """The run's tool calls that waited for a person, newest first (at most 100)."""
    run = get_object_or_404(Run.objects.filter(project__in=visible_projects(request.user)), pk=run_id)
    rows = ToolApproval.objects.filter(run=run).select_related("turn", "decided_by").order_by("-id")[:100]
    return Response({"run": run.pk, "results": [approvals.approval_frame(row) for row in rows]})


@extend_schema(request=AnswerSerializer, responses={200: dict})
@api_view(["POST"])
@permission_classes([ProjectRolePermission])
def card_answer(request: Request, card_id: int) -> Response:
    """Answer a blocked or waiting card: the answer becomes a comment and the card goes back to ready."""
    card = _visible_card(request, card_id)
    require_project_role(request.user, card.project_id, ProjectRole.MEMBER)
    serializer = AnswerSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    answered, run = approvals.card_answer_and_resume(
        card=card, user=request.user, body=serializer.validated_data["body"]
    )
    return Response(
        {
            "card": answered.pk,
            "status": answered.status,
            "run": run.pk if run is not None else None,
            "resumed": bool(run),
        }
    )


@extend_schema(request=DecisionSerializer, responses={200: dict})
@api_view(["POST"])
@permission_classes([ProjectRolePermission])
def approval_decide(request: Request, approval_id: int) -> Response:
    """Approve (the call runs and the turn resumes at its step) or reject (the reason goes to the agent)."""
    approval = get_object_or_404(
        ToolApproval.objects.filter(project__in=visible_projects(request.user)), pk=approval_id
    )
    require_project_role(request.user, approval.project_id, ProjectRole.MEMBER)
    serializer = DecisionSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    decided = approvals.tool_approval_decide(
        approval=approval,
        user=request.user,
        approve=serializer.validated_data["decision"] == "approve",
        reason=serializer.validated_data.get("reason", ""),
    )
    decided = ToolApproval.objects.select_related("turn", "decided_by").get(pk=decided.pk)
    return Response(approvals.approval_frame(decided))


@extend_schema(request=ApprovalToolsSerializer, responses={200: dict})
@api_view(["GET", "PUT"])
@permission_classes([ProjectRolePermission])
def project_approval_tools(request: Request, project_id: int) -> Response:
    """The tools whose calls wait for a person's approval in this project (maintainers change them)."""
    project = get_object_or_404(visible_projects(request.user), pk=project_id)
    if request.method == "PUT":
        require_project_role(request.user, project.pk, ProjectRole.MAINTAINER)
        serializer = ApprovalToolsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        approvals.approval_tools_set(project=project, tools=serializer.validated_data["tools"])
    return Response(_tools_frame(project))


def _tools_frame(project: Project) -> dict[str, object]:
    return {
        "project": project.pk,
        "tools": sorted(approval_tools_for(project.pk)),
        "available": approvals.approvable_tools(),
    }
