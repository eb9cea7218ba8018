"""Verification endpoints: fixtures of a card (upload, list) and verification runs (start, list, read).

Thin: find the card among the caller's projects (non-members get 404), check the role (viewers read,
members act), call one service, shape the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from boards.access import require_project_role, visible_projects
from boards.api.permissions import ProjectRolePermission
from boards.errors import InvalidInput
from boards.models import Card, ProjectRole
from orket_site.api.errors import PayloadTooLarge
from sandboxes import verification
from sandboxes.models import VerificationFixture, VerificationKind, VerificationRun

MAX_RUNS_LISTED = 100


class RawJSONParser(BaseParser):
    """The body as bytes, so the stored fixture and its SHA-256 are exactly what was sent."""

    media_type = "application/json"

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> dict[str, bytes]:
        limit = settings.ORKET_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
        return {"raw": raw}


class VerificationFixtureSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.SerializerMethodField()

    class Meta:
        model = VerificationFixture
        fields = ["id", "project", "card", "name", "sha256", "scenario_count", "uploaded_by", "created_at"]
        read_only_fields = fields

    def get_uploaded_by(self, fixture: VerificationFixture) -> str:
        return fixture.uploaded_by.get_username() if fixture.uploaded_by else ""


class VerificationRunSerializer(serializers.ModelSerializer):
    fixture_sha256 = serializers.SerializerMethodField()
    log_stream = serializers.SerializerMethodField(help_text="Its live output: /ws/logs/{id}/.")

    class Meta:
        model = VerificationRun
        fields = [
            "id",
            "card",
            "fixture",
            "fixture_sha256",
            "sandbox",
            "kind",
            "backend",
            "isolation",
            "status",
            "passed",
            "failed",
            "errors",
            "results",
            "output",
            "duration_ms",
            "requested_by",
            "commit_sha",
            "created_at",
            "started_at",
            "finished_at",
            "log_stream",
        ]
        read_only_fields = fields

    def get_log_stream(self, run: VerificationRun) -> int | None:
        return min((stream.pk for stream in run.log_streams.all()), default=None)  # prefetched

    def get_fixture_sha256(self, run: VerificationRun) -> str:
        return run.fixture.sha256 if run.fixture else ""


class VerificationStartSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=[VerificationKind.FIXTURE, VerificationKind.PYTEST], default=VerificationKind.FIXTURE
    )


def _card(request: Request, card_id: int) -> Card:
    return get_object_or_404(Card.objects.filter(project__in=visible_projects(request.user)), pk=card_id)


class CardFixturesView(APIView):
    """GET: the card's fixtures, latest first. POST: upload one, as a multipart `file` (with an optional
    `name`) or as a JSON body; validated and size-capped before anything is stored."""

    permission_classes = [ProjectRolePermission]
    parser_classes = [RawJSONParser, MultiPartParser]

    @extend_schema(responses=VerificationFixtureSerializer(many=True))
    def get(self, request: Request, card_id: int) -> Response:
        card = _card(request, card_id)
        require_project_role(request.user, card.project_id, ProjectRole.VIEWER)
        rows = VerificationFixture.objects.filter(card=card).select_related("uploaded_by")
        return Response(VerificationFixtureSerializer(rows, many=True).data)

    @extend_schema(request={"application/json": OpenApiTypes.OBJECT, "multipart/form-data": OpenApiTypes.OBJECT},
                   responses={201: VerificationFixtureSerializer})  # fmt: skip
    def post(self, request: Request, card_id: int) -> Response:
        card = _card(request, card_id)
        require_project_role(request.user, card.project_id, ProjectRole.MEMBER)
        name = str(request.query_params.get("name", ""))
        upload = request.FILES.get("file") if hasattr(request, "FILES") else None
        if upload is not None:
            limit = verification.fixture_max_bytes()
            if upload.size is not None and upload.size > limit:
                raise verification.FixtureTooLarge(
                    f"The fixture has {upload.size} bytes; at most {limit} are accepted."
                )
            raw = upload.read(limit + 1)
            name = str(request.data.get("name", "") or name or upload.name or "")
        elif isinstance(request.data, dict) and isinstance(request.data.get("raw"), bytes):
            raw = request.data["raw"]
        else:
            raise InvalidInput(
                "Send the fixture as a JSON body or as a multipart file field named file.", code="fixture_missing"
            )
        if not raw.strip():
            raise InvalidInput("The fixture is empty.", code="fixture_invalid")
        fixture = verification.fixture_upload(card=card, raw=raw, name=name, user=request.user)
        return Response(VerificationFixtureSerializer(fixture).data, status=status.HTTP_201_CREATED)


class CardVerificationsView(APIView):
    """GET: the card's verification runs, latest first, with their results. POST: start one (202)."""

    permission_classes = [ProjectRolePermission]

    def _runs(self, card: Card) -> QuerySet[VerificationRun]:
        return (
            VerificationRun.objects.filter(card=card)
            .select_related("fixture")
            .prefetch_related("log_streams")
            .order_by("-created_at", "-id")
        )

    @extend_schema(responses=VerificationRunSerializer(many=True))
    def get(self, request: Request, card_id: int) -> Response:
        card = _card(request, card_id)
        require_project_role(request.user, card.project_id, ProjectRole.VIEWER)
        return Response(VerificationRunSerializer(self._runs(card)[:MAX_RUNS_LISTED], many=True).data)

    @extend_schema(request=VerificationStartSerializer, responses={202: VerificationRunSerializer})
    def post(self, request: Request, card_id: int) -> Response:
        card = _card(request, card_id)
        require_project_role(request.user, card.project_id, ProjectRole.MEMBER)
        serializer = VerificationStartSerializer(data=request.data if isinstance(request.data, dict) else {})
        serializer.is_valid(raise_exception=True)
        run = verification.verification_start(
            card=card,
            requested_by=request.user.get_username(),
            kind=serializer.validated_data["kind"],
            user=request.user,
        )
        return Response(VerificationRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class VerificationDetailView(APIView):
    permission_classes = [ProjectRolePermission]

    @extend_schema(responses=VerificationRunSerializer)
    def get(self, request: Request, pk: int) -> Response:
        run = get_object_or_404(
            VerificationRun.objects.filter(card__project__in=visible_projects(request.user))
            .select_related("fixture")
            .prefetch_related("log_streams"),
            pk=pk,
        )
        require_project_role(request.user, run.card.project_id, ProjectRole.VIEWER)
        return Response(VerificationRunSerializer(run).data)
