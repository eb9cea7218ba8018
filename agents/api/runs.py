"""Run endpoints: start a run of an epic or a card, read runs, their events and turns, cancel."""

from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.db.models import Count, QuerySet
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from agents import engine, run_options, selectors, services
from agents.export import STEP_FIELDS, TURN_RECORD_NAMES, export_chunks, export_chunks_async
from agents.models import Role, Run, RunEvent, RunStatus, Turn, TurnStep
from agents.prompts import compile_prompt
from agents.run_events import event_frame
from agents.selectors import events_after, run_summarised, runs_summarised
from agents.turn_prompt import prompt_context
from boards.access import require_project_role, visible_projects
from boards.api.permissions import ProjectRolePermission
from boards.models import Card, Epic, ProjectRole

MAX_EVENTS_PAGE = 1000
MAX_ROW_ID = 2**63 - 1


class RunSerializer(serializers.ModelSerializer):
    model_profile = serializers.CharField(source="model_profile.name")
    provider = serializers.CharField(source="model_profile.provider")
    model = serializers.SerializerMethodField()
    team = serializers.CharField(source="team.name")
    active_turns = serializers.SerializerMethodField()
    duration_seconds = serializers.SerializerMethodField()
    cards_done = serializers.SerializerMethodField()
    cards_total = serializers.SerializerMethodField()
    epic_name = serializers.CharField(source="epic.name")

    class Meta:
        model = Run
        fields = [
            "id",
            "project",
            "epic",
            "card",
            "team",
            "model_profile",
            "provider",
            "model",
            "status",
            "status_reason",
            "cancel_requested",
            "max_parallel",
            "profile_is_override",
            "card_token_budget",
            "tokens_in",
            "tokens_out",
            "token_budget",
            "last_seq",
            "created_at",
            "started_at",
            "finished_at",
            "active_turns",
            "duration_seconds",
            "cards_done",
            "cards_total",
            "epic_name",
        ]

    def get_model(self, run: Run) -> str:
        return selectors.model_label(run.model_profile)

    def get_duration_seconds(self, run: Run) -> float | None:
        if run.started_at is None:
            return None
        end = run.finished_at or timezone.now()
        return round((end - run.started_at).total_seconds(), 3)

    def get_cards_done(self, run: Run) -> int:
        return run.summary_cards_done

    def get_cards_total(self, run: Run) -> int:
        return run.summary_cards_total

    def get_active_turns(self, run: Run) -> list[dict[str, Any]]:
        return [
            {"id": t.id, "card": t.card_id, "seat": t.seat, "role": t.role, "status": t.status, "worker": t.lease_owner}
            for t in run.summary_active_turns
        ]


class TurnStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = TurnStep
        fields = list(STEP_FIELDS)


class TurnSerializer(serializers.ModelSerializer):
    steps = TurnStepSerializer(many=True, read_only=True)

    class Meta:
        model = Turn
        fields = [*TURN_RECORD_NAMES, "steps"]


class RunStartSerializer(serializers.Serializer):
    model_profile = serializers.CharField(required=False, max_length=80)
    card = serializers.IntegerField(required=False)
    max_parallel = serializers.IntegerField(required=False, min_value=1, max_value=16)


class RunFilterSerializer(serializers.Serializer):
    """The query string of the run list: ids must be row ids, the status one of the statuses."""

    project = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ROW_ID)
    epic = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ROW_ID)
    status = serializers.ChoiceField(required=False, choices=RunStatus.choices)


class RunEventsQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_ROW_ID)
    limit = serializers.IntegerField(required=False, default=MAX_EVENTS_PAGE, min_value=1)


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The validated query string; blank values count as absent. Refused with 400 and the error shape."""
    given = {key: value for key, value in request.query_params.items() if value != ""}
    serializer = serializer_class(data=given)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = RunSerializer
    permission_classes = [ProjectRolePermission]
    project_roles = {"cancel": ProjectRole.MEMBER, "*": ProjectRole.VIEWER}

    def get_queryset(self) -> QuerySet[Run]:
        queryset = runs_summarised(Run.objects.filter(project__in=visible_projects(self.request.user)))
        return queryset.filter(**_query(RunFilterSerializer, self.request))

    @extend_schema(parameters=[RunFilterSerializer])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = services.run_cancel(run=self.get_object())
        return Response(RunSerializer(run_summarised(run.pk)).data)

    @extend_schema(parameters=[RunEventsQuerySerializer])
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        query = _query(RunEventsQuerySerializer, request)
        after, limit = query["after"], min(query["limit"], MAX_EVENTS_PAGE)
        events: list[RunEvent] = list(events_after(run, after, limit))
        return Response({"run": run.pk, "last_seq": run.last_seq, "events": [event_frame(e) for e in events]})

    @extend_schema(responses={(200, "application/x-ndjson"): str})
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        """The run, every turn and every event as one JSON Lines download (see agents.export)."""
        run = self.get_object()
        asgi = isinstance(request._request, ASGIRequest)
        response = StreamingHttpResponse(
            export_chunks_async(run) if asgi else export_chunks(run), content_type="application/x-ndjson"
        )
        response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.jsonl"'
        return response

    @action(detail=True, methods=["get"])
    def turns(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        page = self.paginate_queryset(Turn.objects.filter(run=run).order_by("id").prefetch_related("steps"))
        return self.get_paginated_response(TurnSerializer(page, many=True).data)


def _start(request: Request, epic: Epic, card: Card | None) -> Response:
    require_project_role(request.user, epic.project_id, ProjectRole.MEMBER)
    serializer = RunStartSerializer(data=request.data or {})
    serializer.is_valid(raise_exception=True)
    reference = serializer.validated_data.get("model_profile")
    limit = run_options.parallel_limit()
    max_parallel = serializer.validated_data.get("max_parallel")
    if max_parallel is not None and max_parallel > limit.maximum:
        raise ValidationError({"max_parallel": [f"At most {limit.maximum} cards at a time here ({limit.source})."]})
    if max_parallel is None:
        max_parallel = min(run_options.DEFAULT_PARALLEL, limit.maximum)
    profile = selectors.profile_by_reference(reference) if reference else None
    if card is None and serializer.validated_data.get("card") is not None:
        card = get_object_or_404(Card, pk=serializer.validated_data["card"], epic=epic)
    run = services.run_start(
        epic=epic,
        user=request.user,
        profile=profile,
        card=card,
        max_parallel=max_parallel,
    )
    return Response(RunSerializer(run_summarised(run.pk)).data, status=status.HTTP_201_CREATED)


def _visible_epic(request: Request, epic_id: int) -> Epic:
    return get_object_or_404(Epic.objects.filter(project__in=visible_projects(request.user)), pk=epic_id)


@extend_schema(request=RunStartSerializer, responses={201: RunSerializer})
@api_view(["POST"])
@permission_classes([ProjectRolePermission])
def epic_runs(request: Request, epic_id: int) -> Response:
    return _start(request, _visible_epic(request, epic_id), None)


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
@permission_classes([ProjectRolePermission])
def epic_run_options(request: Request, epic_id: int) -> Response:
    """What the Run dialog offers: the model profiles (the default marked, each with whether its
    server answers), how many cards may run at a time and why, and the estimated token budget."""
    epic = _visible_epic(request, epic_id)
    require_project_role(request.user, epic.project_id, ProjectRole.MEMBER)
    return Response(run_options.run_options(epic))


@extend_schema(request=RunStartSerializer, responses={201: RunSerializer})
@api_view(["POST"])
@permission_classes([ProjectRolePermission])
def card_runs(request: Request, card_id: int) -> Response:
    card = get_object_or_404(Card.objects.filter(project__in=visible_projects(request.user)), pk=card_id)
    return _start(request, card.epic, card)


CARD_TURNS_LIMIT = 100


class CardTurnSerializer(serializers.ModelSerializer):
    """A turn as the card drawer lists it: who worked, in which run, how it ended (no prompts)."""

    run_status = serializers.CharField(source="run.status")
    steps_count = serializers.IntegerField(read_only=True, help_text="How many model steps the turn took.")

    class Meta:
        model = Turn
        fields = [
            "id",
            "run",
            "run_status",
            "number",
            "seat",
            "role",
            "purpose",
            "model",
            "status",
            "outcome",
            "steps_count",
            "tokens_in",
            "tokens_out",
            "duration_ms",
            "created_at",
            "started_at",
            "finished_at",
        ]


@extend_schema(responses={200: CardTurnSerializer(many=True)})
@api_view(["GET"])
@permission_classes([ProjectRolePermission])
def card_turns(request: Request, card_id: int) -> Response:
    """The latest turns that worked on this card, newest first (at most 100), for project viewers."""
    card = get_object_or_404(Card.objects.filter(project__in=visible_projects(request.user)), pk=card_id)
    turns = (
        Turn.objects.filter(card=card)
        .select_related("run")
        .annotate(steps_count=Count("steps"))
        .order_by("-id")[:CARD_TURNS_LIMIT]
    )
    return Response({"card": card.pk, "results": CardTurnSerializer(turns, many=True).data})


@extend_schema(parameters=[OpenApiParameter("role", str)], responses={200: dict})
@api_view(["GET"])
@permission_classes([ProjectRolePermission])
def card_prompt(request: Request, card_id: int) -> Response:
    """The prompt a role would receive for this card right now (no model is called)."""
    card = get_object_or_404(
        Card.objects.filter(project__in=visible_projects(request.user)).select_related("epic", "project"), pk=card_id
    )
    team = selectors.team_for(card.epic)
    role_name = request.query_params.get("role", "").strip()
    if role_name:
        seat = team.seats.filter(roles__name=role_name).order_by("order").first()
        if seat is None:
            raise ValidationError({"role": f"No seat of team {team.name!r} holds the role {role_name!r}."})
        seat_name, role = seat.name, Role.objects.get(name=role_name)
    else:
        choice = engine.choose_seat(team, card)
        seat_name, role = choice.seat.name, choice.role
    profile = engine.default_profile(card.project_id)
    context = prompt_context(card=card, team=team, seat=seat_name, role=role, profile=profile)
    prompt = compile_prompt(context)
    return Response(
        {
            "card": card.pk,
            "seat": seat_name,
            "role": role.name,
            "model_profile": profile.name,
            "messages": prompt.messages,
            "tools": prompt.tools,
        }
    )
