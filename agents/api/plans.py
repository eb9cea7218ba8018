"""Epic plans: ask the architect for one, read it while it is drafted, edit, accept or discard it.
Thin: parse, call one service in agents.planning, shape the answer."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from agents import planning
from agents.models import EpicPlan
from boards.access import require_project_role, visible_projects
from boards.api.permissions import ProjectRolePermission
from boards.models import Epic, ProjectRole


class EpicPlanSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    accepted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    model = serializers.SerializerMethodField()
    step_count = serializers.SerializerMethodField()
    last_call = serializers.SerializerMethodField()

    class Meta:
        model = EpicPlan
        fields = [
            "id",
            "project",
            "epic",
            "status",
            "replan",
            "seat",
            "model",
            "proposed",
            "document",
            "problems",
            "warnings",
            "error",
            "step_count",
            "last_call",
            "tokens_in",
            "tokens_out",
            "requested_by",
            "accepted_by",
            "cards_created",
            "created_at",
            "drafted_at",
            "accepted_at",
        ]
        read_only_fields = fields

    def get_model(self, plan: EpicPlan) -> str:
        profile = plan.model_profile
        return "" if profile is None else ("scripted" if profile.provider == "scripted" else profile.model)

    def get_step_count(self, plan: EpicPlan) -> int:
        return len(plan.steps)

    def get_last_call(self, plan: EpicPlan) -> str:
        calls = [call.get("name", "") for step in plan.steps for call in step.get("calls", [])]
        return calls[-1] if calls else ""


class PlanRequestSerializer(serializers.Serializer):
    replan = serializers.BooleanField(default=False, help_text="Plan more cards although the epic has some.")


class PlanDocumentSerializer(serializers.Serializer):
    document = serializers.JSONField(help_text="The epic document: {cards: [...]} in Orket's import format.")


class PlanAcceptSerializer(serializers.Serializer):
    document = serializers.JSONField(required=False, help_text="The edited document; the stored one when left out.")


def _visible_plan(request: Request, plan_id: int) -> EpicPlan:
    plan = get_object_or_404(
        EpicPlan.objects.select_related("epic", "project", "model_profile", "requested_by", "accepted_by").filter(
            project__in=visible_projects(request.user)
        ),
        pk=plan_id,
    )
    return plan


def _answer(plan: EpicPlan, code: int = status.HTTP_200_OK) -> Response:
    fresh = EpicPlan.objects.select_related("model_profile", "requested_by", "accepted_by").get(pk=plan.pk)
    return Response(EpicPlanSerializer(fresh).data, status=code)


@extend_schema(methods=["POST"], request=PlanRequestSerializer, responses={201: EpicPlanSerializer})
@extend_schema(methods=["GET"], responses=EpicPlanSerializer(many=True))
@api_view(["GET", "POST"])
@permission_classes([ProjectRolePermission])
def epic_plans(request: Request, epic_id: int) -> Response:
    """GET: the epic's plans, newest first. POST: ask the architect seat for a plan (members)."""
    epic = get_object_or_404(Epic.objects.filter(project__in=visible_projects(request.user)), pk=epic_id)
    if request.method == "GET":
        plans = EpicPlan.objects.filter(epic=epic).select_related("model_profile", "requested_by", "accepted_by")
        return Response(EpicPlanSerializer(plans[:50], many=True).data)
    require_project_role(request.user, epic.project_id, ProjectRole.MEMBER)
    serializer = PlanRequestSerializer(data=request.data or {})
    serializer.is_valid(raise_exception=True)
    plan = planning.plan_request(epic=epic, user=request.user, replan=serializer.validated_data["replan"])
    return _answer(plan, status.HTTP_201_CREATED)


@extend_schema(methods=["GET"], responses=EpicPlanSerializer)
@extend_schema(methods=["PATCH"], request=PlanDocumentSerializer, responses=EpicPlanSerializer)
@api_view(["GET", "PATCH"])
@permission_classes([ProjectRolePermission])
def plan_detail(request: Request, plan_id: int) -> Response:
    """GET: the plan (poll it while it is drafting). PATCH: keep an edited document and its problems."""
    plan = _visible_plan(request, plan_id)
    if request.method == "GET":
        return _answer(plan)
    require_project_role(request.user, plan.project_id, ProjectRole.MEMBER)
    serializer = PlanDocumentSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return _answer(planning.plan_save(plan=plan, document=serializer.validated_data["document"], user=request.user))


@extend_schema(request=PlanAcceptSerializer, responses={200: EpicPlanSerializer, 400: OpenApiTypes.OBJECT})
@api_view(["POST"])
@permission_classes([ProjectRolePermission])
def plan_accept(request: Request, plan_id: int) -> Response:
    """Create the plan's cards, all or none; a plan with problems answers 400 with `errors`."""
    plan = _visible_plan(request, plan_id)
    require_project_role(request.user, plan.project_id, ProjectRole.MEMBER)
    serializer = PlanAcceptSerializer(data=request.data or {})
    serializer.is_valid(raise_exception=True)
    document: Any = serializer.validated_data.get("document")
    return _answer(planning.plan_accept(plan=plan, user=request.user, document=document))


@extend_schema(request=None, responses=EpicPlanSerializer)
@api_view(["POST"])
@permission_classes([ProjectRolePermission])
def plan_discard(request: Request, plan_id: int) -> Response:
    plan = _visible_plan(request, plan_id)
    require_project_role(request.user, plan.project_id, ProjectRole.MEMBER)
    return _answer(planning.plan_discard(plan=plan, user=request.user))
