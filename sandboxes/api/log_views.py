"""Log streams under /api/log-streams/: list and detail, and a stream's lines after a sequence number
(the backfill a socket client or a script reads). Read-only; project membership checked."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from boards.api.permissions import ProjectRolePermission
from boards.models import ProjectRole
from sandboxes import selectors
from sandboxes.log_streams import line_frame
from sandboxes.models import LogStream


class LogStreamSerializer(serializers.ModelSerializer):
    closed = serializers.SerializerMethodField()
    socket = serializers.SerializerMethodField()

    class Meta:
        model = LogStream
        fields = [
            "id",
            "project",
            "kind",
            "label",
            "sandbox",
            "verification_run",
            "refs",
            "last_seq",
            "trimmed_through",
            "closed",
            "created_at",
            "closed_at",
            "socket",
        ]

    def get_closed(self, stream: LogStream) -> bool:
        return stream.closed_at is not None

    def get_socket(self, stream: LogStream) -> str:
        return f"/ws/logs/{stream.pk}/"


def _whole_number(request: Request, name: str, default: int, minimum: int) -> int:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError as error:
        raise ValidationError({name: f"{name} must be a whole number"}) from error
    if value < minimum or value >= 2**63:
        raise ValidationError({name: f"{name} must be at least {minimum}"})
    return value


class LogStreamViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = LogStreamSerializer
    permission_classes = [ProjectRolePermission]
    project_roles = {"*": ProjectRole.VIEWER}

    def get_queryset(self) -> QuerySet[LogStream]:
        params = self.request.query_params
        queryset = selectors.log_streams_for(self.request.user)
        for name in ("project", "sandbox", "verification_run"):
            value = params.get(name)
            if value:
                if not value.isdigit() or int(value) >= 2**63:
                    raise ValidationError({name: f"{name} must be a whole number"})
                queryset = queryset.filter(**{f"{name}_id": int(value)})
        kind = params.get("kind")
        return queryset.filter(kind=kind) if kind else queryset

    @extend_schema(
        parameters=[OpenApiParameter("after", int), OpenApiParameter("limit", int)],
        responses=dict,
    )
    @action(detail=True, methods=["get"])
    def lines(self, request: Request, pk: str | None = None) -> Response:
        stream = self.get_object()
        after = _whole_number(request, "after", 0, 0)
        limit = min(_whole_number(request, "limit", selectors.MAX_LOG_PAGE, 1), selectors.MAX_LOG_PAGE)
        lines = [line_frame(line) for line in selectors.log_lines_after(stream.pk, after, limit=limit)]
        body: dict[str, Any] = {
            "stream": stream.pk,
            "last_seq": stream.last_seq,
            "trimmed_through": stream.trimmed_through,
            "closed": stream.closed_at is not None,
            "lines": lines,
            "more": bool(lines) and lines[-1]["seq"] < stream.last_seq,
        }
        return Response(body)
