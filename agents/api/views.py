"""Team configuration endpoints: read for every user; import, and any change of a model profile
(its base URL and API key variable decide where the server connects and what it sends), for staff."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from agents import services
from agents.models import ModelProfile, Team


class SeatSerializer(serializers.Serializer):
    name = serializers.CharField()
    roles = serializers.SerializerMethodField()
    model_profile = serializers.CharField(source="model_profile.name", default=None)

    def get_roles(self, seat: Any) -> list[str]:
        return [role.name for role in seat.roles.all()]


class TeamSerializer(serializers.ModelSerializer):
    seats = SeatSerializer(many=True, read_only=True)

    class Meta:
        model = Team
        fields = ["id", "name", "description", "seats", "updated_at"]


class ModelProfileSerializer(serializers.ModelSerializer):
    dialect = serializers.CharField(source="dialect.name", default=None)
    api_key_configured = serializers.SerializerMethodField()

    class Meta:
        model = ModelProfile
        fields = [
            "id",
            "name",
            "provider",
            "base_url",
            "model",
            "temperature",
            "seed",
            "context_size",
            "max_tokens",
            "timeout_seconds",
            "retry_attempts",
            "retry_base_delay",
            "tokens_per_second",
            "supports_native_tools",
            "supports_json_schema",
            "json_schema_shape",
            "chars_per_token",
            "max_steps",
            "turn_seconds",
            "api_key_env",
            "api_key_configured",
            "dialect",
        ]
        read_only_fields = ["json_schema_shape", "chars_per_token"]  # found out by Orket, not set

    def get_api_key_configured(self, profile: ModelProfile) -> bool:
        return profile.api_key() is not None


class TeamViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = TeamSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self) -> QuerySet[Team]:
        return Team.objects.prefetch_related("seats__roles", "seats__model_profile")

    @extend_schema(request=OpenApiTypes.OBJECT, responses=TeamSerializer)
    @action(detail=False, methods=["post"], url_path="import", permission_classes=[IsAdminUser])
    def import_team(self, request: Request) -> Response:
        team = services.team_import(document=request.data)
        return Response(TeamSerializer(self.get_queryset().get(pk=team.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> Response:
        return Response(services.team_export(team=self.get_object()))


class StaffChanges(BasePermission):
    """Anyone signed in reads; only staff may ask to change (a 403, not a 405, for everyone else)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or bool(request.user and request.user.is_staff)


class ModelProfileViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ModelProfileSerializer
    permission_classes = [IsAuthenticated, StaffChanges]
    queryset = ModelProfile.objects.select_related("dialect")
