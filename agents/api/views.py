"""Team configuration endpoints: teams are read by every user and imported by staff; model profiles
(their base URL and API key variable decide where the server connects and what it sends) are read,
changed, deleted and tested by staff only. Writes go through agents.profiles."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from agents import profiles, services
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
    dialect = serializers.CharField(source="dialect.name", default=None, read_only=True)
    api_key_configured = serializers.SerializerMethodField()

    class Meta:
        model = ModelProfile
        fields = [
            "id",
            *profiles.EDITABLE_FIELDS,
            "json_schema_shape",
            "chars_per_token",
            "api_key_configured",
            "dialect",
        ]
        read_only_fields = ["json_schema_shape", "chars_per_token"]  # found out by Orket, not set
        extra_kwargs = {"api_key_env": {"required": False}}

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


class ConnectionReportSerializer(serializers.Serializer):
    reachable = serializers.BooleanField()
    models = serializers.ListField(child=serializers.CharField())
    model_listed = serializers.BooleanField(allow_null=True, help_text="Whether the profile's model is among them.")
    schema_shape = serializers.CharField(help_text="json_schema, json_object, ollama_format, unsupported or empty.")
    detail = serializers.CharField(allow_blank=True)
    refused = serializers.BooleanField(help_text="The outbound policy (ORKET_OUTBOUND_HOSTS) refused the address.")


class ModelProfileViewSet(viewsets.ModelViewSet):
    """Model profiles, for staff: list, create, change, delete (refused with 409 while a run, seat,
    project or epic names the profile) and test the connection."""

    serializer_class = ModelProfileSerializer
    permission_classes = [IsAdminUser]
    queryset = ModelProfile.objects.select_related("dialect")

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = profiles.profile_create(user=self.request.user, values=dict(serializer.validated_data))

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = profiles.profile_update(
            user=self.request.user, profile=serializer.instance, values=dict(serializer.validated_data)
        )

    def perform_destroy(self, instance: ModelProfile) -> None:
        profiles.profile_delete(user=self.request.user, profile=instance)

    @extend_schema(request=None, responses=ConnectionReportSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Reach the server, list its models and find the constrained-output shape it takes."""
        report = profiles.profile_test(profile=self.get_object())
        return Response(ConnectionReportSerializer(report.as_dict()).data)
