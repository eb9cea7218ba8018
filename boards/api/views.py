"""Project and membership endpoints. Thin: parse, call one service, shape the answer."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from boards import services
from boards.access import require_project_role, visible_projects
from boards.api.permissions import ProjectRolePermission
from boards.api.serializers import (
    MembershipRoleSerializer,
    MembershipSerializer,
    MembershipWriteSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
)
from boards.api.work_serializers import ArchiveSerializer
from boards.models import Membership, Project, ProjectRole

TRUE_WORDS = {"1", "true", "yes", "on"}


class ProjectViewSet(viewsets.ModelViewSet):
    serializer_class = ProjectSerializer
    permission_classes = [ProjectRolePermission]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    project_roles = {
        "list": ProjectRole.VIEWER,
        "retrieve": ProjectRole.VIEWER,
        "create": ProjectRole.VIEWER,
        "members": ProjectRole.VIEWER,
        "*": ProjectRole.MAINTAINER,
    }

    def get_queryset(self) -> QuerySet[Project]:
        projects = visible_projects(self.request.user).order_by("name", "id")
        if self.action == "list" and self.request.query_params.get("archived", "") not in TRUE_WORDS:
            projects = projects.filter(archived_at__isnull=True)
        return projects

    def project_id_of(self, project: Project) -> int:
        return project.pk

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        user = self.request.user
        if user.is_authenticated:
            if user.is_superuser:
                context["roles"] = {pk: ProjectRole.MAINTAINER for pk in Project.objects.values_list("pk", flat=True)}
            else:
                context["roles"] = dict(Membership.objects.filter(user=user).values_list("project_id", "role"))
        return context

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_create(creator=request.user, **serializer.validated_data)
        return Response(self.get_serializer(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ProjectUpdateSerializer, responses=ProjectSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project = self.get_object()
        serializer = ProjectUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_update(project=project, **serializer.validated_data)
        return Response(self.get_serializer(project).data)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(request=ArchiveSerializer, responses=ProjectSerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str | None = None) -> Response:
        """Archive (hide from the project list; `?archived=1` lists them) or restore the project."""
        project = self.get_object()
        serializer = ArchiveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_archive(project=project, archived=serializer.validated_data["archived"])
        return Response(self.get_serializer(project).data)

    @extend_schema(request=MembershipWriteSerializer, responses=MembershipSerializer(many=True))
    @action(detail=True, methods=["get", "post"])
    def members(self, request: Request, pk: str | None = None) -> Response:
        project = self.get_object()
        if request.method == "POST":
            require_project_role(request.user, project.pk, ProjectRole.MAINTAINER)
            serializer = MembershipWriteSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            membership = services.membership_set(project=project, **serializer.validated_data)
            return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)
        memberships = project.memberships.select_related("user").order_by("user__username")
        return Response(MembershipSerializer(memberships, many=True).data)

    @extend_schema(request=MembershipRoleSerializer, responses=MembershipSerializer)
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<user_id>\d+)")
    def member(self, request: Request, pk: str | None = None, user_id: str = "") -> Response:
        project = self.get_object()
        if request.method == "DELETE":
            services.membership_remove(project=project, user_id=int(user_id))
            return Response(status=status.HTTP_204_NO_CONTENT)
        serializer = MembershipRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = project.memberships.select_related("user").filter(user_id=int(user_id)).first()
        if membership is None:
            return Response({"detail": "That user is not a member of this project.", "code": "not_a_member"}, 404)
        membership = services.membership_set(
            project=project, username=membership.user.username, role=serializer.validated_data["role"]
        )
        return Response(MembershipSerializer(membership).data)
