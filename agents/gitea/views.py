"""Views of the Gitea integration: the webhook endpoint, the settings and deliveries pages, and the
API. Thin: they parse input, call one service and shape the answer."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from agents.errors import DeliveryRefused
from agents.gitea import services
from agents.gitea.models import GiteaLink, WebhookDelivery
from agents.gitea.services import MAX_BODY_BYTES
from boards.access import require_project_role, role_allows, role_or_404
from boards.errors import NotFound
from boards.models import Project, ProjectRole
from orket_site.errors import OrketError

DELIVERIES_PER_PAGE = 50
# A delivery taken is answered at once: 202 while it waits to be processed (or is ignored), 200 for a replay.
RECEIVED_STATUS = {"accepted": 202, "ignored": 202, "duplicate": 200}

# ---------------------------------------------------------------------------------------------
# The webhook endpoint
# ---------------------------------------------------------------------------------------------


def _link_for(project: str) -> GiteaLink | None:
    query = GiteaLink.objects.filter(enabled=True)
    if project.isdigit():
        return query.filter(project_id=int(project)).first()
    return query.filter(project__slug=project).first()


@csrf_exempt
@login_not_required
@require_POST
def gitea_webhook(request: HttpRequest, project: str) -> JsonResponse:
    """POST /hooks/gitea/<project id or slug>/: check the signature, store, queue, answer at once. A
    project that does not exist or is not linked is answered like a wrong signature."""
    link = _link_for(project)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        if length > MAX_BODY_BYTES:  # refused without reading the body
            services.delivery_refuse_too_large(link=link)
        received = services.delivery_receive(link=link, headers=headers, body=request.read(MAX_BODY_BYTES + 1))
    except DeliveryRefused as refused:
        return JsonResponse({"detail": refused.message, "code": refused.code}, status=refused.status)
    answer: dict[str, Any] = {"detail": received.detail, "code": received.code}
    if received.delivery_id is not None:
        answer["delivery"] = received.delivery_id
    return JsonResponse(answer, status=RECEIVED_STATUS[received.code])


# ---------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _form_values(data: Any) -> dict[str, Any]:
    return {
        "base_url": str(data.get("base_url", "")),
        "owner": str(data.get("owner", "")),
        "repo": str(data.get("repo", "")),
        "base_branch": str(data.get("base_branch", "") or "main"),
        "token_env": str(data.get("token_env", "")),
        "token": str(data.get("token", "")),
        "required_reviewers": [
            name.strip() for name in str(data.get("required_reviewers", "")).replace("\n", ",").split(",")
        ],
        "required_approvals": _int(data.get("required_approvals"), 1),
        "auto_merge": data.get("auto_merge") in ("on", "true", "1", True),
        "auto_deploy": data.get("auto_deploy") in ("on", "true", "1", True),
        "escalation_cycle": _int(data.get("escalation_cycle"), 3),
        "max_cycles": _int(data.get("max_cycles"), 4),
        "regenerate_secret": data.get("regenerate_secret") in ("on", "true", "1", True),
    }


def gitea_settings_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """/projects/<id>/settings/gitea/: the link and review policy (maintainers change it)."""
    role = role_or_404(request, project_id)
    project = get_object_or_404(Project, pk=project_id)
    can_edit = role_allows(role, ProjectRole.MAINTAINER)
    link = GiteaLink.objects.filter(project=project).first()
    context: dict[str, Any] = {
        "project": project,
        "role": role,
        "can_edit": can_edit,
        "link": link,
        "hook_url": request.build_absolute_uri(reverse("gitea-webhook", args=[project.pk])),
        "new_secret": "",
        "problems": [],
        "posted": None,
    }
    if request.method == "POST":
        if not can_edit:
            context["problems"] = ["Only maintainers change the Gitea settings."]
            return render(request, "agents/gitea_settings.html", context, status=403)
        values = _form_values(request.POST)
        try:
            saved = services.gitea_link_save(project=project, **values)
        except OrketError as error:  # invalid input, a refused variable name or a refused host
            context.update(problems=[error.message], posted=values)
            return render(request, "agents/gitea_settings.html", context, status=400)
        context["link"] = saved.link
        if saved.new_secret:
            # Shown once, in this answer only; never stored in plain text.
            context["new_secret"] = saved.new_secret
            return render(request, "agents/gitea_settings.html", context)
        messages.success(request, "Gitea settings saved.")
        return redirect("gitea-settings-page", project_id=project.pk)
    return render(request, "agents/gitea_settings.html", context)


def gitea_deliveries_page(request: HttpRequest, project_id: int) -> HttpResponse:
    role = role_or_404(request, project_id)
    project = get_object_or_404(Project, pk=project_id)
    deliveries = WebhookDelivery.objects.filter(project=project).order_by("-received_at", "-id")
    status = request.GET.get("status", "")
    if status:
        deliveries = deliveries.filter(status=status)
    page = Paginator(deliveries, DELIVERIES_PER_PAGE).get_page(request.GET.get("page"))
    link = GiteaLink.objects.filter(project=project).first()
    return render(
        request,
        "agents/gitea_deliveries.html",
        {
            "project": project,
            "role": role,
            "page": page,
            "status": status,
            "link": link,
            "can_reprocess": role_allows(role, ProjectRole.MAINTAINER),
        },
    )


@require_POST
def gitea_delivery_reprocess_page(request: HttpRequest, project_id: int, delivery_id: int) -> HttpResponse:
    role = role_or_404(request, project_id)
    if not role_allows(role, ProjectRole.MAINTAINER):
        return HttpResponse("Only maintainers re-process deliveries.", status=403)
    delivery = get_object_or_404(WebhookDelivery, pk=delivery_id, project_id=project_id)
    delivery = services.delivery_process(delivery_id=delivery.pk, force=True)
    messages.info(request, f"Delivery {delivery.delivery_id}: {delivery.status}. {delivery.result}")
    return redirect("gitea-deliveries-page", project_id=project_id)


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------


class GiteaLinkSerializer(serializers.ModelSerializer):
    # Checked by the service, which answers a refused host or variable with its own code.
    base_url = serializers.CharField(max_length=300)
    token_env = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    token = serializers.CharField(write_only=True, required=False, allow_blank=True, default="")
    has_token = serializers.BooleanField(read_only=True)
    regenerate_secret = serializers.BooleanField(write_only=True, required=False, default=False)

    class Meta:
        model = GiteaLink
        fields = [
            "base_url",
            "owner",
            "repo",
            "base_branch",
            "token_env",
            "token",
            "has_token",
            "required_reviewers",
            "required_approvals",
            "auto_merge",
            "auto_deploy",
            "escalation_cycle",
            "max_cycles",
            "enabled",
            "regenerate_secret",
            "refused_deliveries",
            "last_reconciled_at",
        ]
        read_only_fields = ["refused_deliveries", "last_reconciled_at"]


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "delivery_id",
            "event",
            "event_type",
            "action",
            "payload_sha256",
            "meaning_key",
            "received_at",
            "status",
            "result",
            "attempts",
            "processed_at",
            "payload",
        ]
        read_only_fields = fields


def _require(request: Request, project_id: int, minimum: str) -> Project:
    """The project when the user has the role; a missing project answers like one they may not see."""
    require_project_role(request.user, project_id, minimum)
    return Project.objects.get(pk=project_id)


@extend_schema(request=GiteaLinkSerializer, responses=GiteaLinkSerializer)
@api_view(["GET", "PUT"])
def gitea_link_api(request: Request, project_id: int) -> Response:
    """GET (members) or PUT (maintainers) the project's Gitea link; the token is never returned and the
    webhook secret only in the answer of the PUT that generated it."""
    if request.method == "GET":
        project = _require(request, project_id, ProjectRole.VIEWER)
        link = GiteaLink.objects.filter(project=project).first()
        if link is None:
            raise NotFound("This project is not linked to Gitea.", code="not_linked")
        return Response(GiteaLinkSerializer(link).data)
    project = _require(request, project_id, ProjectRole.MAINTAINER)
    serializer = GiteaLinkSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    saved = services.gitea_link_save(project=project, **serializer.validated_data)
    data = dict(GiteaLinkSerializer(saved.link).data)
    if saved.new_secret:
        data["webhook_secret"] = saved.new_secret
    return Response(data)


@extend_schema(responses=DeliverySerializer(many=True))
@api_view(["GET"])
def gitea_deliveries_api(request: Request, project_id: int) -> Response:
    project = _require(request, project_id, ProjectRole.VIEWER)
    deliveries = WebhookDelivery.objects.filter(project=project).order_by("-received_at", "-id")[:200]
    return Response(DeliverySerializer(deliveries, many=True).data)


@extend_schema(request=None, responses=DeliverySerializer)
@api_view(["POST"])
def gitea_delivery_reprocess_api(request: Request, project_id: int, delivery_id: int) -> Response:
    _require(request, project_id, ProjectRole.MAINTAINER)
    delivery = WebhookDelivery.objects.filter(pk=delivery_id, project_id=project_id).first()
    if delivery is None:
        raise NotFound("There is no such delivery.")
    delivery = services.delivery_process(delivery_id=delivery.pk, force=True)
    return Response(DeliverySerializer(delivery).data)
