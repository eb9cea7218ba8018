"""The code of a card for project viewers: its diff against its base, its turns' commits, and a read-only
browser of its checkout. A card of another project, or of a project the user is not in, is a 404."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from agents import selectors
from boards.access import require_project_role
from boards.api.permissions import ProjectRolePermission
from boards.models import Card, ProjectRole

MAX_ROW_ID = 2**63 - 1


class DiffQuerySerializer(serializers.Serializer):
    turn = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ROW_ID)
    step = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)
    path = serializers.CharField(required=False, max_length=1024, trim_whitespace=False)


class PathQuerySerializer(serializers.Serializer):
    path = serializers.CharField(required=False, default="", allow_blank=True, max_length=1024, trim_whitespace=False)


def _card(request: Request, project_id: int, card_id: int) -> Card:
    require_project_role(request.user, project_id, ProjectRole.VIEWER)
    return get_object_or_404(Card, pk=card_id, project_id=project_id)


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@extend_schema(parameters=[DiffQuerySerializer], responses={200: dict})
@api_view(["GET"])
@permission_classes([ProjectRolePermission])
def card_diff(request: Request, project_id: int, card_id: int) -> Response:
    """The card branch against its base (`git diff base...card/<id>`), or one turn's or step's commits
    (`?turn=`, `?step=`), limited to a file with `?path=`: files with counts, hunks with highlighted lines."""
    card = _card(request, project_id, card_id)
    query = _query(DiffQuerySerializer, request)
    if "step" in query and "turn" not in query:
        raise serializers.ValidationError({"step": "A step is chosen within a turn: give turn as well."})
    data = selectors.card_code_diff(
        card=card, turn_id=query.get("turn"), step=query.get("step"), path=query.get("path", "")
    )
    return Response(data)


@extend_schema(responses={200: dict})
@api_view(["GET"])
@permission_classes([ProjectRolePermission])
def card_diff_turns(request: Request, project_id: int, card_id: int) -> Response:
    """The card's turns that made commits, newest first, with each commit's step and files."""
    card = _card(request, project_id, card_id)
    return Response({"card": card.pk, "results": selectors.card_turns_with_commits(card)})


@extend_schema(parameters=[PathQuerySerializer], responses={200: dict})
@api_view(["GET"])
@permission_classes([ProjectRolePermission])
def card_files(request: Request, project_id: int, card_id: int) -> Response:
    """A folder of the card's checkout (`?path=`, the top when left out): names, kinds and sizes."""
    card = _card(request, project_id, card_id)
    return Response(selectors.card_folder(card=card, path=_query(PathQuerySerializer, request)["path"]))


@extend_schema(parameters=[OpenApiParameter("path", str, required=True)], responses={200: dict})
@api_view(["GET"])
@permission_classes([ProjectRolePermission])
def card_file(request: Request, project_id: int, card_id: int) -> Response:
    """A file of the card's checkout, highlighted; binary and large files are summarised."""
    card = _card(request, project_id, card_id)
    return Response(selectors.card_file(card=card, path=_query(PathQuerySerializer, request)["path"]))
