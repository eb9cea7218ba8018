"""Sandbox endpoints under /api/sandboxes/: list, detail, create, stop, delete, logs. Thin: parse,
check membership, call one service, shape the answer. Nothing here talks to Docker."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from boards.access import require_project_role, visible_projects
from boards.api.permissions import ProjectRolePermission
from boards.errors import NotFound
from boards.models import Card, Project, ProjectRole
from sandboxes import selectors, services
from sandboxes.models import Sandbox


class SandboxSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)
    card_title = serializers.CharField(source="card.title", default=None)
    log_stream = serializers.SerializerMethodField(help_text="The id of its service log stream (/ws/logs/{id}/).")

    class Meta:
        model = Sandbox
        fields = [
            "id",
            "project",
            "card",
            "card_title",
            "pull_request_number",
            "name",
            "status",
            "backend",
            "isolation",
            "stack",
            "urls",
            "last_error",
            "health_checks_passed",
            "health_checks_failed",
            "last_health_check_at",
            "expires_at",
            "created_by",
            "created_at",
            "updated_at",
            "log_stream",
        ]

    def get_log_stream(self, sandbox: Sandbox) -> int | None:
        return selectors.sandbox_log_stream_id(sandbox.pk)


class SandboxCreateSerializer(serializers.Serializer):
    project = serializers.IntegerField(required=False)
    card = serializers.IntegerField(required=False)
    pull_request_number = serializers.IntegerField(required=False, min_value=1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("project") is None and attrs.get("card") is None:
            raise ValidationError({"project": "Give a project or a card."})
        return attrs


class SandboxViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = SandboxSerializer
    permission_classes = [ProjectRolePermission]
    project_roles = {
        "list": ProjectRole.VIEWER,
        "retrieve": ProjectRole.VIEWER,
        "logs": ProjectRole.VIEWER,
        "*": ProjectRole.MEMBER,
    }

    def get_queryset(self) -> QuerySet[Sandbox]:
        params = self.request.query_params
        project = params.get("project")
        try:
            project_id = int(project) if project else None
        except ValueError as error:
            raise ValidationError({"project": "project must be a whole number"}) from error
        return selectors.sandboxes_for(
            self.request.user,
            project_id=project_id,
            status=params.get("status") or None,
            include_deleted=self.action != "list",
        ).select_related("created_by")

    @extend_schema(request=SandboxCreateSerializer, responses={202: SandboxSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = SandboxCreateSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        card: Card | None = None
        project_id = data.get("project")
        if data.get("card") is not None:
            card = Card.objects.filter(pk=data["card"], project__in=visible_projects(request.user)).first()
            if card is None:
                raise NotFound("Card not found.")
            if project_id is not None and project_id != card.project_id:
                raise ValidationError({"card": "The card belongs to another project."})
            project_id = card.project_id
        require_project_role(request.user, project_id, ProjectRole.MEMBER)
        project = get_object_or_404(Project, pk=project_id)
        sandbox = services.sandbox_create(
            project=project, card=card, pull_request_number=data.get("pull_request_number"), user=request.user
        )
        return Response(SandboxSerializer(sandbox).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: SandboxSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        sandbox = services.sandbox_stop(sandbox=self.get_object(), user=request.user)
        return Response(SandboxSerializer(sandbox).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: SandboxSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        sandbox = services.sandbox_start(sandbox=self.get_object(), user=request.user)
        return Response(SandboxSerializer(sandbox).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: SandboxSerializer})
    @action(detail=True, methods=["post"], url_path="delete")
    def delete_sandbox(self, request: Request, pk: str | None = None) -> Response:
        sandbox = services.sandbox_delete(sandbox=self.get_object(), user=request.user)
        return Response(SandboxSerializer(sandbox).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: SandboxSerializer})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        return self.delete_sandbox(request, pk)

    @extend_schema(parameters=[OpenApiParameter("tail", int)], responses=dict)
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, pk: str | None = None) -> Response:
        sandbox = self.get_object()
        try:
            tail = int(request.query_params.get("tail", 200))
        except ValueError as error:
            raise ValidationError({"tail": "tail must be a whole number"}) from error
        if tail < 1:
            raise ValidationError({"tail": "tail must be at least 1"})
        services.sandbox_logs_request(sandbox=sandbox)
        return Response(selectors.sandbox_logs(sandbox, tail=tail))
