"""Browser pages that create and change projects and epics: New project (on the project list), New
epic and Edit epic (from the board and the epic page), archiving and restoring.

Django forms with CSRF and POST-redirect-GET; every write goes through `boards.services` with the same
role checks as the API (any signed-in user may create a project and becomes its maintainer; members
create, edit and archive epics). A refused write re-renders the form with the reason inline.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from boards import services
from boards.access import require_project_role, visible_projects
from boards.actors import Actor
from boards.errors import BoardsError, Forbidden, NotFound
from boards.models import TEXT_MAX, TITLE_MAX, Epic, Project, ProjectRole, Rock


class ProjectCreateForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    description = forms.CharField(label="Description", required=False, max_length=20_000, widget=forms.Textarea)


class EpicForm(forms.Form):
    name = forms.CharField(label="Name", max_length=TITLE_MAX)
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=TEXT_MAX,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="What the epic should achieve; the architect plans its cards from this.",
    )
    rock = forms.ModelChoiceField(label="Rock (optional)", queryset=Rock.objects.none(), required=False)

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rock_field = self.fields["rock"]
        assert isinstance(rock_field, forms.ModelChoiceField)
        rock_field.queryset = Rock.objects.filter(project=project).order_by("rank", "id")


def _role(request: HttpRequest, project_id: int, minimum: str) -> str:
    """The user's role when it reaches `minimum`; 404 for non-members, Forbidden (403) below it."""
    try:
        return require_project_role(request.user, project_id, minimum)
    except NotFound as error:
        raise Http404(error.message) from error


def _forbidden(request: HttpRequest, error: Forbidden) -> HttpResponse:
    return render(request, "403.html", {"exception": error.message}, status=403)


@require_POST
def project_new(request: HttpRequest) -> HttpResponse:
    """Create a project from the project list; the creator becomes its maintainer."""
    form = ProjectCreateForm(request.POST)
    if form.is_valid():
        try:
            project = services.project_create(
                name=form.cleaned_data["name"], description=form.cleaned_data["description"], creator=request.user
            )
        except BoardsError as error:
            form.add_error("name", error.message)
        else:
            messages.success(request, f"The project {project.name} was created; you are its maintainer.")
            return redirect("project-board", project_id=project.pk)
    return render(request, "home.html", {**home_context(request), "project_form": form}, status=400)


@require_http_methods(["GET", "POST"])
def epic_new(request: HttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    try:
        _role(request, project_id, ProjectRole.MEMBER)
    except Forbidden as error:
        return _forbidden(request, error)
    form = EpicForm(request.POST if request.method == "POST" else None, project=project)
    if request.method == "POST" and form.is_valid():
        try:
            epic = services.epic_create(
                project=project,
                actor=Actor.for_user(request.user),
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                rock=form.cleaned_data["rock"],
            )
        except BoardsError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"The epic {epic.name} was created.")
            return redirect(reverse("project-board", args=[project.pk]) + f"?epic={epic.pk}")
    status = 400 if request.method == "POST" else 200
    return render(request, "boards/epic_form.html", {"project": project, "form": form, "epic": None}, status=status)


@require_http_methods(["GET", "POST"])
def epic_edit(request: HttpRequest, epic_id: int) -> HttpResponse:
    """Edit an epic's name, description and rock, or archive / restore it (`action=archive|restore`)."""
    epic = get_object_or_404(Epic.objects.select_related("project", "rock"), pk=epic_id)
    project = epic.project
    try:
        _role(request, project.pk, ProjectRole.MEMBER)
    except Forbidden as error:
        return _forbidden(request, error)
    actor = Actor.for_user(request.user)
    action = request.POST.get("action", "save") if request.method == "POST" else ""
    if action in ("archive", "restore"):
        try:
            services.epic_archive(epic=epic, actor=actor, archived=action == "archive")
        except BoardsError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"The epic {epic.name} was {'archived' if action == 'archive' else 'restored'}.")
        return redirect("epic-page", epic_id=epic.pk)
    initial = {"name": epic.name, "description": epic.description, "rock": epic.rock}
    form = EpicForm(request.POST if request.method == "POST" else None, project=project, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.epic_update(epic=epic, actor=actor, **form.cleaned_data)
        except BoardsError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "The epic was saved.")
            return redirect("epic-page", epic_id=epic.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "boards/epic_form.html", {"project": project, "form": form, "epic": epic}, status=status)


def home_context(request: HttpRequest) -> dict[str, Any]:
    """The project list (archived ones only with `?archived=1`) and the New project form."""
    show_archived = request.GET.get("archived", "") in ("1", "true", "yes", "on")
    projects = visible_projects(request.user).order_by("name", "id")
    if not show_archived:
        projects = projects.filter(archived_at__isnull=True)
    return {"projects": projects, "show_archived": show_archived, "project_form": ProjectCreateForm()}
