"""Browser pages of planning: an epic's Plan page (ask the architect, see earlier plans) and the plan
page, where a draft is edited and accepted (static/orket/plan.js, through the plan API).

Thin shells: the role is checked here and again by the services; a viewer sees the plans but no
Plan, Accept or Discard controls, and the services refuse them (403)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from agents import planning
from agents.models import EpicPlan, PlanStatus
from boards.access import role_allows, role_or_404
from boards.models import Card, Epic, ProjectRole
from orket_site.errors import OrketError


@require_http_methods(["GET", "POST"])
def epic_plan(request: HttpRequest, epic_id: int) -> HttpResponse:
    """GET: the epic's plans and the Plan button. POST (members): ask the architect for a plan."""
    epic = get_object_or_404(Epic.objects.select_related("project"), pk=epic_id)
    role = role_or_404(request, epic.project_id)
    can_act = role_allows(role, ProjectRole.MEMBER)
    card_count = Card.objects.filter(epic=epic).count()
    error, status = "", 200
    if request.method == "POST":
        try:
            plan = planning.plan_request(epic=epic, user=request.user, replan=request.POST.get("replan") == "1")
        except OrketError as refused:
            error = refused.message
            status = refused.status
        else:
            return redirect("plan-page", plan_id=plan.pk)
    plans = list(EpicPlan.objects.filter(epic=epic).select_related("requested_by", "accepted_by")[:20])
    context = {
        "epic": epic,
        "project": epic.project,
        "can_act": can_act,
        "card_count": card_count,
        "plans": plans,
        "error": error,
        "board_url": reverse("project-board", args=[epic.project_id]) + f"?epic={epic.pk}",
    }
    return render(request, "agents/epic_plan.html", context, status=status)


@require_safe
def plan_page(request: HttpRequest, plan_id: int) -> HttpResponse:
    """A plan: its progress while drafting, the editor while a draft, and what became of it after."""
    plan = get_object_or_404(
        EpicPlan.objects.select_related("epic", "project", "requested_by", "accepted_by"), pk=plan_id
    )
    role = role_or_404(request, plan.project_id)
    can_act = role_allows(role, ProjectRole.MEMBER)
    board_url = reverse("project-board", args=[plan.project_id]) + f"?epic={plan.epic_id}"
    try:
        seats = planning.team_seats(plan.epic)
    except OrketError:
        seats = []
    config = {
        "plan": plan.pk,
        "canAct": can_act,
        "seats": seats,
        "api": {
            "plan": reverse("plan-detail", args=[plan.pk]),
            "accept": reverse("plan-accept", args=[plan.pk]),
            "discard": reverse("plan-discard", args=[plan.pk]),
        },
        "boardUrl": board_url,
        "epicPlanUrl": reverse("epic-plan", args=[plan.epic_id]),
    }
    if plan.status == PlanStatus.ACCEPTED and request.GET.get("accepted"):
        messages.success(request, f"{plan.cards_created} cards were created.")
    context = {"plan": plan, "epic": plan.epic, "project": plan.project, "config": config, "can_act": can_act}
    return render(request, "agents/plan.html", context)
