"""Rocks, epics, cards, dependencies, comments, history, import and export.

Thin: parse with a serializer, call one service, shape the answer. Membership rules come from
ProjectRolePermission (non-members 404, viewers read, members act) and again from the services.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.views.decorators.gzip import gzip_page
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from boards import machine, selectors, services
from boards.access import require_project_role, visible_projects
from boards.actors import Actor
from boards.api import work_serializers as ws
from boards.api.permissions import ProjectRolePermission
from boards.errors import InvalidInput
from boards.models import Card, CardHistory, Epic, Project, ProjectRole, Rock

TRUE_WORDS = {"1", "true", "yes", "on"}
# The board lists are compact: these card fields serve the scheduling on the server, not the page.
BOARD_OMIT = frozenset({"created_at", "updated_at"})
FALSE_WORDS = {"0", "false", "no", "off"}


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as error:
        raise InvalidInput(f"The {name} filter takes a number, not {value!r}.", code="bad_filter") from error


def _actor(request: Request) -> Actor:
    return Actor.for_user(request.user)


class WorkItemViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Shared behaviour: project scoping, the transition and history endpoints."""

    permission_classes = [ProjectRolePermission]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    project_roles = {
        "list": ProjectRole.VIEWER,
        "retrieve": ProjectRole.VIEWER,
        "history": ProjectRole.VIEWER,
        "create": ProjectRole.MEMBER,
        "partial_update": ProjectRole.MEMBER,
        "transition": ProjectRole.MEMBER,
    }
    model: type[Card] | type[Epic] | type[Rock]
    ordering_fields = ("rank", "created_at", "updated_at", "status", "id")

    def get_project_id(self) -> Any:
        if self.action == "list":
            return self.request.query_params.get("project") or None
        if self.action == "create":
            return self.create_project_id()
        return None

    def create_project_id(self) -> Any:
        data = self.request.data if isinstance(self.request.data, dict) else {}
        return data.get("project")

    def base_queryset(self) -> QuerySet[Any]:
        return self.model.objects.filter(project__in=visible_projects(self.request.user))

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.action != "list":
            return queryset
        params = self.request.query_params
        project = _int_param(self.request, "project")
        if project is not None:
            queryset = queryset.filter(project_id=project)
        statuses = [value for value in params.get("status", "").split(",") if value]
        if statuses:
            queryset = queryset.filter(status__in=statuses)
        text = params.get("q", "").strip()
        if text:
            queryset = queryset.filter(self.search_q(text[:200]))
        ordering = params.get("ordering", "")
        if ordering:
            fields = [field.strip() for field in ordering.split(",") if field.strip()]
            for field in fields:
                if field.lstrip("-") not in self.ordering_fields:
                    allowed = ", ".join(self.ordering_fields)
                    raise InvalidInput(f"Cannot order by {field!r}; use one of {allowed}.", code="bad_ordering")
            queryset = queryset.order_by(*fields, "id")
        return queryset

    def search_q(self, text: str) -> Q:
        return Q(name__icontains=text) | Q(description__icontains=text)

    def project_id_of(self, item: Any) -> int:
        return item.project_id

    @extend_schema(request=ws.TransitionSerializer)
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, pk: str | None = None) -> Response:
        item = self.get_object()
        serializer = ws.TransitionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        item = services.card_transition(
            card=item,
            to_status=data["status"],
            actor=_actor(request),
            wait_reason=data["wait_reason"],
            reason=data["reason"],
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=item.pk)).data)

    @extend_schema(responses=ws.HistorySerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: str | None = None) -> Response:
        item = self.get_object()
        key = "card" if isinstance(item, Card) else item.item_type
        rows = CardHistory.objects.filter(**{key: item}).select_related("actor_user").order_by("created_at", "id")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ws.HistorySerializer(page, many=True).data)


class RockViewSet(WorkItemViewSet):
    model = Rock
    serializer_class = ws.RockSerializer
    ordering_fields = (*WorkItemViewSet.ordering_fields, "name")

    def get_queryset(self) -> QuerySet[Rock]:
        return self.base_queryset().order_by("project_id", "rank", "id")

    @extend_schema(request=ws.RockCreateSerializer, responses=ws.RockSerializer)
    def create(self, request: Request) -> Response:
        serializer = ws.RockCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rock = services.rock_create(actor=_actor(request), **serializer.validated_data)
        return Response(ws.RockSerializer(rock).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ws.RockUpdateSerializer, responses=ws.RockSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        rock = self.get_object()
        serializer = ws.RockUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _refuse_status(request)
        rock = services.rock_update(rock=rock, actor=_actor(request), **serializer.validated_data)
        return Response(ws.RockSerializer(rock).data)


def _refuse_status(request: Request) -> None:
    """Status (and wait_reason, which belongs to it) never change by editing."""
    if isinstance(request.data, dict):
        for name in ("status", "wait_reason"):
            if name in request.data:
                raise InvalidInput(
                    f"The {name} cannot be changed by editing; "
                    "POST {status, wait_reason, reason} to the transition endpoint instead.",
                    code="status_readonly",
                    field=name,
                )


class EpicViewSet(WorkItemViewSet):
    model = Epic
    serializer_class = ws.EpicSerializer
    ordering_fields = (*WorkItemViewSet.ordering_fields, "name")
    project_roles = {
        **WorkItemViewSet.project_roles,
        "board": ProjectRole.VIEWER,
        "export": ProjectRole.VIEWER,
        "archive": ProjectRole.MEMBER,
    }

    def get_queryset(self) -> QuerySet[Epic]:
        queryset = selectors.epics_with_counts(self.base_queryset()).order_by("project_id", "rank", "id")
        if self.action == "list" and self.request.query_params.get("archived", "") not in TRUE_WORDS:
            queryset = queryset.filter(archived_at__isnull=True)
        rock = _int_param(self.request, "rock") if self.action == "list" else None
        return queryset.filter(rock_id=rock) if rock is not None else queryset

    @extend_schema(request=ws.ArchiveSerializer, responses=ws.EpicSerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str | None = None) -> Response:
        """Archive (hide from the board and lists; `?archived=1` lists them) or restore the epic."""
        epic = self.get_object()
        serializer = ws.ArchiveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        epic = services.epic_archive(epic=epic, actor=_actor(request), archived=serializer.validated_data["archived"])
        return Response(self.get_serializer(self.get_queryset().get(pk=epic.pk)).data)

    @extend_schema(request=ws.EpicCreateSerializer, responses=ws.EpicSerializer)
    def create(self, request: Request) -> Response:
        serializer = ws.EpicCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        epic = services.epic_create(actor=_actor(request), **serializer.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=epic.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ws.EpicUpdateSerializer, responses=ws.EpicSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        epic = self.get_object()
        _refuse_status(request)
        serializer = ws.EpicUpdateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        epic = services.epic_update(epic=epic, actor=_actor(request), **serializer.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=epic.pk)).data)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    @method_decorator(gzip_page)  # large, and free of secrets: safe to compress
    def board(self, request: Request, pk: str | None = None) -> Response:
        """All cards of the epic (lightweight), dependency pairs, the serving order and the run gate."""
        epic = self.get_object()
        board = selectors.epic_board(epic)
        gate = selectors.epic_run_gate(epic)
        return Response(
            {
                "epic": self.get_serializer(epic).data,
                "cards": _compact(board.cards),
                "dependencies": [list(pair) for pair in board.dependencies],
                "order": board.order,
                "run_gate": {"allowed": gate.allowed, "code": gate.code, "reason": gate.reason},
            }
        )

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> Response:
        return Response(services.epic_export(epic=self.get_object()))


class CardViewSet(WorkItemViewSet):
    model = Card
    serializer_class = ws.CardSerializer
    ordering_fields = (*WorkItemViewSet.ordering_fields, "priority", "title")
    project_roles = {
        **WorkItemViewSet.project_roles,
        "dependencies": ProjectRole.VIEWER,
        "dependency": ProjectRole.MEMBER,
        "reorder": ProjectRole.MEMBER,
        "comments": ProjectRole.VIEWER,
    }

    def create_project_id(self) -> Any:
        data = self.request.data if isinstance(self.request.data, dict) else {}
        try:
            epic_id = int(data.get("epic"))
        except (TypeError, ValueError):
            return None
        # A missing epic is answered like one of a project the user may not see (no project 0 exists).
        return Epic.objects.filter(pk=epic_id).values_list("project_id", flat=True).first() or 0

    def get_queryset(self) -> QuerySet[Card]:
        return self.base_queryset().prefetch_related("dependency_links").order_by("epic_id", "rank", "id")

    def search_q(self, text: str) -> Q:
        return Q(title__icontains=text) | Q(description__icontains=text)

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        queryset = super().filter_queryset(queryset)
        if self.action != "list":
            return queryset
        params = self.request.query_params
        epic = _int_param(self.request, "epic")
        if epic is not None:
            queryset = queryset.filter(epic_id=epic)
        if "seat" in params:
            queryset = queryset.filter(seat=params["seat"])
        label = params.get("label", "")
        if "\x00" in label:  # PostgreSQL refuses it inside jsonb, failing the whole transaction
            raise InvalidInput("The label filter cannot hold a NUL character.", code="bad_filter")
        if label:
            queryset = _with_label(queryset, label)
        if params.get("priority"):
            try:
                queryset = queryset.filter(priority=services.parse_priority(params["priority"]))
            except ValueError as error:
                raise InvalidInput(str(error), code="bad_filter") from error
        blocked = params.get("blocked", "").lower()
        if blocked in TRUE_WORDS:
            queryset = queryset.filter(status__in=sorted(machine.WAITING_STATUSES))
        elif blocked in FALSE_WORDS:
            queryset = queryset.exclude(status__in=sorted(machine.WAITING_STATUSES))
        elif blocked:
            raise InvalidInput("The blocked filter takes true or false.", code="bad_filter")
        return queryset

    @extend_schema(
        parameters=[
            OpenApiParameter(name, str, required=False)
            for name in ("project", "epic", "status", "seat", "label", "priority", "blocked", "q", "ordering")
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=ws.CardCreateSerializer, responses=ws.CardSerializer)
    def create(self, request: Request) -> Response:
        serializer = ws.CardCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        card = services.card_create(actor=_actor(request), **data)
        return Response(self.get_serializer(self.get_queryset().get(pk=card.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ws.CardUpdateSerializer, responses=ws.CardSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        card = self.get_object()
        _refuse_status(request)
        serializer = ws.CardUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        card = services.card_update(card=card, actor=_actor(request), **serializer.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=card.pk)).data)

    @extend_schema(request=ws.ReorderSerializer, responses=ws.CardSerializer)
    @action(detail=True, methods=["post"])
    def reorder(self, request: Request, pk: str | None = None) -> Response:
        """Place the card in its column right before `before` or right after `after` (card ids)."""
        card = self.get_object()
        serializer = ws.ReorderSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.card_reorder(card=card, actor=_actor(request), after_id=data["after"], before_id=data["before"])
        return Response(self.get_serializer(self.get_queryset().get(pk=card.pk)).data)

    @extend_schema(request=ws.DependencyAddSerializer, responses=ws.CardSerializer)
    @action(detail=True, methods=["get", "post"])
    def dependencies(self, request: Request, pk: str | None = None) -> Response:
        card = self.get_object()
        if request.method == "POST":
            require_project_role(request.user, card.project_id, ProjectRole.MEMBER)
            serializer = ws.DependencyAddSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            target = Card.objects.filter(pk=serializer.validated_data["depends_on"]).first()
            if target is None or target.project_id != card.project_id:
                raise InvalidInput("No card with that id in this project.", code="dependency_not_found")
            services.dependency_add(card=card, depends_on=target, actor=_actor(request))
            return Response(self.get_serializer(self.get_queryset().get(pk=card.pk)).data, status=201)
        depends_on, dependents = selectors.card_dependency_ids(card)
        return Response({"depends_on": depends_on, "dependents": dependents})

    @action(detail=True, methods=["delete"], url_path=r"dependencies/(?P<depends_on_id>\d+)")
    def dependency(self, request: Request, pk: str | None = None, depends_on_id: str = "") -> Response:
        card = self.get_object()
        services.dependency_remove(card=card, depends_on_id=int(depends_on_id), actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=ws.CommentCreateSerializer, responses=ws.CommentSerializer(many=True))
    @action(detail=True, methods=["get", "post"])
    def comments(self, request: Request, pk: str | None = None) -> Response:
        card = self.get_object()
        if request.method == "POST":
            require_project_role(request.user, card.project_id, ProjectRole.MEMBER)
            serializer = ws.CommentCreateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            comment = services.comment_add(card=card, actor=_actor(request), body=serializer.validated_data["body"])
            return Response(ws.CommentSerializer(comment).data, status=status.HTTP_201_CREATED)
        rows = card.comments.select_related("author").order_by("created_at", "id")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ws.CommentSerializer(page, many=True).data)


def _compact(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in card.items() if key not in BOARD_OMIT} for card in cards]


def _with_label(queryset: QuerySet[Card], label: str) -> QuerySet[Card]:
    """Cards whose labels list holds `label` exactly, on PostgreSQL and SQLite alike."""
    if connection.vendor == "postgresql":
        return queryset.filter(labels__contains=[label])
    table = Card._meta.db_table
    has_label = RawSQL(  # noqa: S611 - constant SQL, the label is a bound parameter
        f'EXISTS (SELECT 1 FROM json_each("{table}"."labels") WHERE json_each.value = %s)',  # noqa: S608
        (label,),
    )
    return queryset.alias(has_label=has_label).filter(has_label=True)


class EpicImportView(APIView):
    """POST /api/projects/{id}/import/: an epic in Orket's JSON format becomes rows, all or nothing."""

    permission_classes = [ProjectRolePermission]
    project_roles = {"POST": ProjectRole.MEMBER}

    def get_project_id(self) -> Any:
        return self.kwargs["pk"]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=ws.EpicSerializer)
    def post(self, request: Request, pk: int) -> Response:
        project = get_object_or_404(Project, pk=pk)
        rock_id = request.query_params.get("rock")
        rock = get_object_or_404(Rock, pk=rock_id, project=project) if rock_id else None
        epic = services.epic_import(project=project, data=request.data, actor=_actor(request), rock=rock)
        data = ws.EpicSerializer(selectors.epics_with_counts(Epic.objects.filter(pk=epic.pk)).get()).data
        return Response(data, status=status.HTTP_201_CREATED)


class ProjectBoardView(APIView):
    """GET /api/projects/{id}/board/: the epics of a project and the cards of them all, for swimlanes."""

    permission_classes = [ProjectRolePermission]
    project_roles = {"GET": ProjectRole.VIEWER}

    def get_project_id(self) -> Any:
        return self.kwargs["pk"]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @method_decorator(gzip_page)  # large, and free of secrets: safe to compress
    def get(self, request: Request, pk: int) -> Response:
        project = get_object_or_404(Project, pk=pk)
        board = selectors.project_board(project.pk)
        return Response(
            {
                "project": project.pk,
                "epics": board.epics,
                "cards": _compact(board.cards),
                "dependencies": [list(pair) for pair in board.dependencies],
            }
        )


class ProjectSettingsView(APIView):
    """GET, PATCH /api/projects/{id}/settings/: architecture governance, complexity threshold, WIP limits."""

    permission_classes = [ProjectRolePermission]
    project_roles = {"GET": ProjectRole.VIEWER, "PATCH": ProjectRole.MAINTAINER}

    def get_project_id(self) -> Any:
        return self.kwargs["pk"]

    @extend_schema(responses=ws.ProjectSettingsSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ws.ProjectSettingsSerializer(get_object_or_404(Project, pk=pk)).data)

    @extend_schema(request=ws.ProjectSettingsSerializer, responses=ws.ProjectSettingsSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        project = get_object_or_404(Project, pk=pk)
        serializer = ws.ProjectSettingsSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        project = services.project_settings_update(project=project, actor=_actor(request), **serializer.validated_data)
        return Response(ws.ProjectSettingsSerializer(project).data)
