"""Project pages in the browser: project settings, the epic page with its charts, and epic import.

Server-rendered forms with CSRF and POST-redirect-GET. Every write goes through `boards.services`
inside a transaction; a refused write re-renders the page with the reason as a sentence and changes
nothing. Boards knows no other app: a section another app owns (the default model profile) is handed
to `project_settings` as a `SettingsSection` by the app that routes the page (agents.project_settings).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from boards import machine, services
from boards.access import project_role_of, require_project_role, role_allows, role_or_404
from boards.actors import Actor
from boards.errors import BoardsError, Forbidden, NotFound
from boards.models import Card, CardDependency, CardHistory, Epic, Membership, Project, ProjectRole
from boards.services import ImportInvalid
from orket_site import untrusted_json
from orket_site.errors import OrketError

# Below the site-wide request body limit (ORKET_MAX_BODY_BYTES, 2 MiB by default), so that an oversized
# file reaches this page and is refused with a sentence rather than by the body-size middleware.
IMPORT_MAX_BYTES = 1024 * 1024
CHART_MAX_POINTS = 400


def _status_label(status: str) -> str:
    return status.replace("_", " ").capitalize()


class FormProblems(Exception):
    """A posted form that does not validate; `problems` are sentences."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def form_errors(form: forms.Form) -> list[str]:
    """A form's errors as sentences that name the field."""
    sentences = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        for error in errors:
            sentences.append(f"{label}: {error}" if label else str(error))
    return sentences


# ---------------------------------------------------------------------------------------------
# Project settings
# ---------------------------------------------------------------------------------------------

ROLE_CHOICES = ProjectRole.choices


class ProjectForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    description = forms.CharField(label="Description", required=False, max_length=20_000, widget=forms.Textarea)


class MemberAddForm(forms.Form):
    username = forms.CharField(label="Username", max_length=150)
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES)


class MemberRoleForm(forms.Form):
    user_id = forms.IntegerField(label="Member", widget=forms.HiddenInput)
    role = forms.ChoiceField(label="Role", choices=ROLE_CHOICES)


class MemberRemoveForm(forms.Form):
    user_id = forms.IntegerField(label="Member", widget=forms.HiddenInput)


class GovernanceForm(forms.Form):
    architecture_governance = forms.BooleanField(label="Architecture governance", required=False)
    complexity_threshold = forms.IntegerField(label="Complexity threshold", min_value=1, max_value=1_000)
    require_verification = forms.BooleanField(label="Require a passed verification", required=False)


class WipForm(forms.Form):
    """One optional positive limit per card status; an empty box means no limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for status in machine.STATUSES:
            self.fields[f"wip_{status}"] = forms.IntegerField(
                label=f"WIP limit for {_status_label(status)}", required=False, min_value=1, max_value=100_000
            )

    def limits(self) -> dict[str, int]:
        return {
            status: self.cleaned_data[f"wip_{status}"]
            for status in machine.STATUSES
            if self.cleaned_data.get(f"wip_{status}") is not None
        }


SECTIONS = ("project", "archive", "member_add", "member_role", "member_remove", "governance", "wip")


@dataclass(frozen=True)
class SettingsSection:
    """A section of the project settings page that another app owns, shown after the WIP limits.

    `context` gives the names its template reads (merged into the page's context, next to `can_edit`,
    `errors` and `posted`); `apply` saves the posted form through the owning app's services inside
    the page's transaction and returns the success sentence, or raises FormProblems or an OrketError.
    """

    name: str
    template: str
    context: Callable[[Project], dict[str, Any]]
    apply: Callable[[Project, Actor, Any], str]


def _settings_context(project: Project, role: str, sections: Sequence[SettingsSection]) -> dict[str, Any]:
    memberships = list(Membership.objects.filter(project=project).select_related("user").order_by("user__username"))
    wip_rows = [
        {"status": status, "label": _status_label(status), "limit": project.wip_limits.get(status, "")}
        for status in machine.STATUSES
    ]
    context: dict[str, Any] = {}
    for section in sections:
        context.update(section.context(project))
    return {
        **context,
        "project": project,
        "role": role,
        "can_edit": role_allows(role, ProjectRole.MAINTAINER),
        "memberships": memberships,
        "role_choices": ROLE_CHOICES,
        "wip_rows": wip_rows,
        "section_templates": [section.template for section in sections],
        "maintainer_count": sum(1 for m in memberships if m.role == ProjectRole.MAINTAINER),
        "errors": {},
        "posted": {},
    }


def _apply(project: Project, actor: Actor, section: str, data: Any, sections: Sequence[SettingsSection]) -> str:
    """Apply one settings section; return the success sentence or raise OrketError / FormProblems."""
    for contributed in sections:
        if contributed.name == section:
            return contributed.apply(project, actor, data)
    if section == "project":
        form = ProjectForm(data)
        if not form.is_valid():
            raise FormProblems(form_errors(form))
        services.project_update(
            project=project, name=form.cleaned_data["name"], description=form.cleaned_data["description"]
        )
        return "The name and description were saved."
    if section == "archive":
        archived = data.get("archived", "") == "1"
        services.project_archive(project=project, archived=archived)
        return (
            "The project was archived; it is hidden from the project list." if archived else "The project was restored."
        )
    if section == "member_add":
        form = MemberAddForm(data)
        if not form.is_valid():
            raise FormProblems(form_errors(form))
        username = form.cleaned_data["username"].strip()
        if Membership.objects.filter(project=project, user__username=username).exists():
            raise FormProblems([f"{username} is already a member; change their role in the list instead."])
        services.membership_set(project=project, username=username, role=form.cleaned_data["role"])
        return f"{username} was added as {form.cleaned_data['role']}."
    if section == "member_role":
        form = MemberRoleForm(data)
        if not form.is_valid():
            raise FormProblems(form_errors(form))
        membership = Membership.objects.filter(project=project, user_id=form.cleaned_data["user_id"]).first()
        if membership is None:
            raise NotFound("That user is not a member of this project.")
        username = membership.user.get_username()
        services.membership_set(project=project, username=username, role=form.cleaned_data["role"])
        return f"{username} is now {form.cleaned_data['role']}."
    if section == "member_remove":
        form = MemberRemoveForm(data)
        if not form.is_valid():
            raise FormProblems(form_errors(form))
        membership = Membership.objects.filter(project=project, user_id=form.cleaned_data["user_id"]).first()
        username = membership.user.get_username() if membership else ""
        services.membership_remove(project=project, user_id=form.cleaned_data["user_id"])
        return f"{username} was removed from the project."
    if section == "governance":
        form = GovernanceForm(data)
        if not form.is_valid():
            raise FormProblems(form_errors(form))
        services.project_settings_update(
            project=project,
            actor=actor,
            architecture_governance=form.cleaned_data["architecture_governance"],
            complexity_threshold=form.cleaned_data["complexity_threshold"],
            require_verification=form.cleaned_data["require_verification"],
        )
        return "Architecture governance, the complexity threshold and the verification rule were saved."
    if section == "wip":
        form = WipForm(data)
        if not form.is_valid():
            raise FormProblems(form_errors(form))
        services.project_settings_update(project=project, actor=actor, wip_limits=form.limits())
        return "The WIP limits were saved."
    raise FormProblems(["The form sent an unknown section; reload the page and try again."])


def project_settings(
    request: HttpRequest, project_id: int, *, sections: Sequence[SettingsSection] = ()
) -> HttpResponse:
    """GET shows the settings (read-only below maintainer); POST applies one section and redirects.

    `sections` are the parts other apps own; the page is routed by agents.project_settings, which
    passes them."""
    role = role_or_404(request, project_id)
    project = get_object_or_404(Project, pk=project_id)
    if request.method != "POST":
        return render(request, "boards/settings.html", _settings_context(project, role, sections))
    section = request.POST.get("section", "")
    known = {*SECTIONS, *(contributed.name for contributed in sections)}
    section = section if section in known else "general"
    try:
        require_project_role(request.user, project_id, ProjectRole.MAINTAINER)
    except Forbidden as error:
        context = _settings_context(project, role, sections)
        context["errors"] = {"general": [f"{error.message} Nothing was changed."]}
        return render(request, "boards/settings.html", context, status=403)
    try:
        with transaction.atomic():
            done = _apply(project, Actor.for_user(request.user), section, request.POST, sections)
    except FormProblems as error:
        return _settings_error(request, project, role, section, error.problems, sections)
    except OrketError as error:
        return _settings_error(request, project, role, section, [error.message], sections)
    messages.success(request, done)
    if project_role_of(request.user, project.pk) is None:  # they removed themselves
        return redirect("home")
    return redirect(reverse("project-settings-page", args=[project.pk]) + f"#{section.replace('_', '-')}")


def _settings_error(
    request: HttpRequest,
    project: Project,
    role: str,
    section: str,
    problems: list[str],
    sections: Sequence[SettingsSection],
) -> HttpResponse:
    project.refresh_from_db()
    context = _settings_context(project, role, sections)
    context["errors"] = {section: problems}
    context["posted"] = {section: request.POST}
    return render(request, "boards/settings.html", context, status=400)


# ---------------------------------------------------------------------------------------------
# The epic page and its charts
# ---------------------------------------------------------------------------------------------


def epic_flow(epic: Epic, cards: list[Card] | None = None, until: datetime | None = None) -> dict[str, Any]:
    """Cumulative flow and burndown of an epic from its cards' history.

    Each status-carrying history row (creation or transition) of a card in the epic is a moment; at
    each moment the chart counts cards per status and the cards still open (neither done nor
    canceled). Rows in the same second collapse into one point. A card without any history counts in
    its current status from its creation. Long histories are thinned to CHART_MAX_POINTS points,
    always keeping the last. With `until` (the page passes now) the last state is carried to that
    moment, so a chart with a single change still draws a line.
    """
    if cards is None:
        cards = list(Card.objects.filter(epic=epic).only("pk", "status", "created_at"))
    rows = list(
        CardHistory.objects.filter(card__epic=epic)
        .exclude(to_status="")
        .order_by("created_at", "id")
        .values_list("card_id", "to_status", "created_at")
    )
    with_history = {card_id for card_id, _, _ in rows}
    events = rows + [(card.pk, card.status, card.created_at) for card in cards if card.pk not in with_history]
    events.sort(key=lambda row: row[2])
    current: dict[int, str] = {}
    points: list[tuple[str, Counter[str]]] = []
    for card_id, status, moment in events:
        current[card_id] = status
        stamp = moment.replace(microsecond=0).isoformat()
        counts = Counter(current.values())
        if points and points[-1][0] == stamp:
            points[-1] = (stamp, counts)
        else:
            points.append((stamp, counts))
    if until is not None and points:
        stamp = until.replace(microsecond=0).isoformat()
        if stamp > points[-1][0]:
            points.append((stamp, points[-1][1]))
    if len(points) > CHART_MAX_POINTS:
        step = len(points) / (CHART_MAX_POINTS - 1)
        points = [points[int(index * step)] for index in range(CHART_MAX_POINTS - 1)] + [points[-1]]
    return {
        "labels": [stamp for stamp, _ in points],
        "statuses": list(machine.STATUSES),
        "statusLabels": {status: _status_label(status) for status in machine.STATUSES},
        "flow": {status: [counts.get(status, 0) for _, counts in points] for status in machine.STATUSES},
        "burndown": [
            sum(n for status, n in counts.items() if status not in machine.FINAL_STATUSES) for _, counts in points
        ],
    }


def epic_page(request: HttpRequest, epic_id: int) -> HttpResponse:
    """An epic: progress, counts per status, its cards with seats and dependencies, and two charts."""
    epic = get_object_or_404(Epic.objects.select_related("project", "rock"), pk=epic_id)
    role = role_or_404(request, epic.project_id)
    cards = list(
        Card.objects.filter(epic=epic)
        .order_by("rank", "id")
        .prefetch_related(
            Prefetch(
                "dependency_links",
                queryset=CardDependency.objects.select_related("depends_on").order_by("depends_on_id"),
            )
        )
    )
    counts = Counter(card.status for card in cards)
    total = sum(n for status, n in counts.items() if status != machine.CANCELED)
    done = counts.get(machine.DONE, 0)
    context = {
        "epic": epic,
        "project": epic.project,
        "role": role,
        "can_import": role_allows(role, ProjectRole.MEMBER),
        "cards": [
            {
                "card": card,
                "status_label": _status_label(card.status),
                "depends_on": [link.depends_on for link in card.dependency_links.all()],
            }
            for card in cards
        ],
        "status_counts": [
            {"status": status, "label": _status_label(status), "count": counts.get(status, 0)}
            for status in machine.STATUSES
        ],
        "done": done,
        "total": total,
        "canceled": counts.get(machine.CANCELED, 0),
        "percent": round(100 * done / total) if total else 0,
        "epic_status_label": _status_label(epic.status),
        "board_url": f"/projects/{epic.project_id}/board/?epic={epic.pk}",
        "runs_url": f"{reverse('project-runs', args=[epic.project_id])}?epic={epic.pk}",
        "export_url": f"/api/epics/{epic.pk}/export/",
        "settings_url": reverse("project-settings-page", args=[epic.project_id]),
        "charts": epic_flow(epic, cards, until=timezone.now()),
    }
    return render(request, "boards/epic.html", context)


# ---------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------


class ImportForm(forms.Form):
    file = forms.FileField(label="Epic JSON file", required=False)
    text = forms.CharField(label="Or paste the JSON", required=False, widget=forms.Textarea)


def _read_document(request: HttpRequest) -> tuple[Any, list[dict[str, str]]]:
    """The posted JSON document, or the problems that stop it from being read."""
    upload = request.FILES.get("file")
    text = request.POST.get("text", "")
    if upload is not None:
        if upload.size is not None and upload.size > IMPORT_MAX_BYTES:
            return None, [{"path": "", "message": "The file is larger than 1 MiB; split the epic or trim it."}]
        raw = upload.read(IMPORT_MAX_BYTES + 1)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None, [{"path": "", "message": "The file is not UTF-8 text."}]
    elif not text.strip():
        return None, [{"path": "", "message": "Choose a JSON file or paste the JSON of an epic."}]
    if len(text.encode("utf-8")) > IMPORT_MAX_BYTES:
        return None, [{"path": "", "message": "The JSON is larger than 1 MiB; split the epic or trim it."}]
    try:
        return untrusted_json.loads(text), []
    except untrusted_json.MalformedJSON as error:
        return None, [{"path": "", "message": f"This is not valid JSON: {error.message}"}]


def project_import(request: HttpRequest, project_id: int) -> HttpResponse:
    """Members upload or paste an epic in Orket's JSON format; all or nothing."""
    role_or_404(request, project_id)
    project = get_object_or_404(Project, pk=project_id)
    context: dict[str, Any] = {
        "project": project,
        "max_mib": IMPORT_MAX_BYTES // (1024 * 1024),
        "max_bytes": IMPORT_MAX_BYTES,
        "problems": [],
    }
    try:
        require_project_role(request.user, project_id, ProjectRole.MEMBER)
    except Forbidden as error:
        context["forbidden"] = error.message
        return render(request, "boards/import.html", context, status=403)
    if request.method != "POST":
        return render(request, "boards/import.html", context)
    context["text"] = request.POST.get("text", "")[:IMPORT_MAX_BYTES]
    data, problems = _read_document(request)
    if not problems:
        try:
            epic = services.epic_import(project=project, data=data, actor=Actor.for_user(request.user))
        except ImportInvalid as error:
            problems = list(error.extra.get("errors") or [{"path": "", "message": error.message}])
            context["summary"] = error.message
        except BoardsError as error:
            problems = [{"path": "", "message": error.message}]
        else:
            messages.success(request, f"The epic {epic.name} was imported.")
            return redirect("epic-page", epic_id=epic.pk)
    context["problems"] = problems
    return render(request, "boards/import.html", context, status=400)
