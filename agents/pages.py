"""Browser pages of runs: the live run view, the replay view and a project's run history.

The pages are thin shells: they check the viewer's role and hand the page script the ids and API
addresses it needs; everything live comes from the run API and the run stream WebSocket.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from agents import approvals, selectors
from agents.models import RUN_FINAL_STATUSES, Run, approval_tools_for
from boards.access import role_allows, role_or_404
from boards.models import Card, Epic, Project, ProjectRole
from orket_site.errors import OrketError

RUNS_PER_PAGE = 50


def _visible_run(request: HttpRequest, run_id: int) -> tuple[Run, str]:
    run = get_object_or_404(Run.objects.select_related("epic", "project", "model_profile", "card"), pk=run_id)
    return run, role_or_404(request, run.project_id)


def _page_config(request: HttpRequest, run: Run, role: str, mode: str) -> dict[str, Any]:
    cards = Card.objects.filter(pk=run.card_id) if run.card_id else Card.objects.filter(epic_id=run.epic_id)
    return {
        "mode": mode,
        "run": run.pk,
        "project": run.project_id,
        "canCancel": role_allows(role, ProjectRole.MEMBER),
        "final": run.status in RUN_FINAL_STATUSES,
        "api": {
            "run": reverse("run-detail", args=[run.pk]),
            "cancel": reverse("run-cancel", args=[run.pk]),
            "events": reverse("run-events", args=[run.pk]),
            "turns": reverse("run-turns", args=[run.pk]),
            "export": f"{reverse('run-detail', args=[run.pk])}export/",
        },
        "ws": f"/ws/runs/{run.pk}/",
        "cards": {str(card.pk): card.title for card in cards.order_by("rank", "pk")},
        "runView": reverse("run-view", args=[run.pk]),
        "replayView": reverse("run-replay", args=[run.pk]),
    }


def run_view(request: HttpRequest, run_id: int) -> HttpResponse:
    """The live run view: header, transcript per card and seat, timeline and token charts."""
    run, role = _visible_run(request, run_id)
    context = {
        "run": run,
        "model": selectors.model_label(run.model_profile),
        "config": _page_config(request, run, role, "live"),
        "page_mode": "live",
    }
    return render(request, "agents/run_view.html", context)


def run_replay(request: HttpRequest, run_id: int) -> HttpResponse:
    """Plays a stored run (or an exported file chosen by the viewer) back through the run view renderer."""
    run, role = _visible_run(request, run_id)
    config = _page_config(request, run, role, "replay")
    config["canCancel"] = False
    context = {"run": run, "model": selectors.model_label(run.model_profile), "config": config, "page_mode": "replay"}
    return render(request, "agents/run_view.html", context)


def project_runs(request: HttpRequest, project_id: int) -> HttpResponse:
    """A project's runs, newest first, optionally for one epic (`?epic=`)."""
    role_or_404(request, project_id)
    project = get_object_or_404(Project, pk=project_id)
    epics = list(Epic.objects.filter(project=project).order_by("name"))
    runs = Run.objects.filter(project=project).select_related("epic", "card", "model_profile").order_by("-id")
    selected_epic: Epic | None = None
    epic_param = request.GET.get("epic", "").strip()
    if epic_param:
        selected_epic = next((epic for epic in epics if str(epic.pk) == epic_param), None)
        if selected_epic is None:
            raise Http404("No such epic in this project.")
        runs = runs.filter(epic=selected_epic)
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    done_by_epic = {
        row["epic_id"]: (row["done"], row["total"])
        for row in Card.objects.filter(project=project)
        .values("epic_id")
        .annotate(done=Count("pk", filter=Q(status="done")), total=Count("pk"))
    }
    now = timezone.now()
    rows = []
    for run in page.object_list:
        if run.card_id:
            cards_done, cards_total = (1 if run.card.status == "done" else 0), 1
        else:
            cards_done, cards_total = done_by_epic.get(run.epic_id, (0, 0))
        duration = None
        if run.started_at is not None:
            duration = ((run.finished_at or now) - run.started_at).total_seconds()
        rows.append(
            {
                "run": run,
                "model": selectors.model_label(run.model_profile),
                "duration": _duration_text(duration),
                "tokens": f"{run.tokens_in + run.tokens_out:,}",
                "cards_done": cards_done,
                "cards_total": cards_total,
            }
        )
    context = {"project": project, "epics": epics, "selected_epic": selected_epic, "rows": rows, "page": page}
    return render(request, "agents/project_runs.html", context)


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{seconds:.1f}s"


@require_http_methods(["GET", "HEAD", "POST"])
def approval_settings(request: HttpRequest, project_id: int) -> HttpResponse:
    """/projects/<id>/settings/approvals/: the tools whose calls wait for a person (maintainers change it)."""
    role = role_or_404(request, project_id)
    project = get_object_or_404(Project, pk=project_id)
    can_edit = role_allows(role, ProjectRole.MAINTAINER)
    saved = request.GET.get("saved") == "1"
    context: dict[str, Any] = {"project": project, "can_edit": can_edit, "problems": [], "saved": saved}
    status = 200
    if request.method == "POST":
        if not can_edit:
            context["problems"], status = ["Only maintainers change which calls need approval."], 403
        else:
            try:
                approvals.approval_tools_set(project=project, tools=request.POST.getlist("tools"))
            except OrketError as error:
                context["problems"], status = [error.message], 400
            else:
                return redirect(reverse("approval-settings", args=[project.pk]) + "?saved=1")
    chosen = approval_tools_for(project.pk)
    context["tools"] = [(name, name in chosen) for name in approvals.approvable_tools()]
    return render(request, "agents/approval_settings.html", context, status=status)
