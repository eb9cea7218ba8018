"""Browser pages for model profiles (staff): list, create, edit, delete, test the connection and the
projects' default profiles; and the teams page, where staff choose each seat's model.

Thin views: forms check the input, agents.profiles does every write.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from agents import profiles, selectors
from agents.errors import AgentsError
from agents.models import ModelProfile, ProjectAgentSettings, Seat, Team
from boards.models import Project


def _require_staff(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only staff manage model profiles.")


class ProfileForm(forms.ModelForm):
    base_url = forms.URLField(required=False, max_length=500, assume_scheme="http", help_text="Empty for scripted.")

    class Meta:
        model = ModelProfile
        fields = list(profiles.EDITABLE_FIELDS)


class ProfileChoice(forms.Form):
    profile = forms.ModelChoiceField(queryset=ModelProfile.objects.all(), required=False)


def _report_text(profile: ModelProfile, report: profiles.ConnectionReport) -> str:
    if report.refused:
        return f"{profile.name}: refused by the outbound policy. {report.detail}"
    if not report.reachable:
        return f"{profile.name}: not reachable. {report.detail}"
    listed = {True: "is listed", False: "is NOT listed", None: "could not be checked"}[report.model_listed]
    models = ", ".join(report.models[:20]) or "none"
    shape = report.schema_shape or "not found"
    text = f"{profile.name}: reachable. Models: {models}. Model {profile.model} {listed}. Constrained output: {shape}."
    return f"{text} {report.detail}".strip()


def model_profiles(request: HttpRequest) -> HttpResponse:
    _require_staff(request)
    defaults = dict(ProjectAgentSettings.objects.values_list("project_id", "default_model_profile_id"))
    rows = [
        {"profile": profile, "uses": profiles.profile_uses(profile)}
        for profile in ModelProfile.objects.select_related("dialect").order_by("name")
    ]
    projects = [
        {"project": project, "profile_id": defaults.get(project.pk)} for project in Project.objects.order_by("name")
    ]
    context = {"rows": rows, "projects": projects, "all_profiles": [row["profile"] for row in rows]}
    return render(request, "agents/model_profiles.html", context)


def model_profile_form(request: HttpRequest, profile_id: int | None = None) -> HttpResponse:
    _require_staff(request)
    profile = get_object_or_404(ModelProfile, pk=profile_id) if profile_id else None
    form = ProfileForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        values = {key: form.cleaned_data[key] for key in profiles.EDITABLE_FIELDS if key in form.cleaned_data}
        try:
            if profile is None:
                saved = profiles.profile_create(user=request.user, values=values)
            else:
                saved = profiles.profile_update(user=request.user, profile=profile, values=values)
        except AgentsError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Model profile {saved.name} was saved. Test its connection from the list.")
            return redirect("model-profiles")
    status = 400 if request.method == "POST" else 200
    return render(request, "agents/model_profile_form.html", {"form": form, "profile": profile}, status=status)


@require_POST
def model_profile_delete(request: HttpRequest, profile_id: int) -> HttpResponse:
    _require_staff(request)
    profile = get_object_or_404(ModelProfile, pk=profile_id)
    try:
        profiles.profile_delete(user=request.user, profile=profile)
    except AgentsError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Model profile {profile.name} was deleted.")
    return redirect("model-profiles")


@require_POST
def model_profile_test(request: HttpRequest, profile_id: int) -> HttpResponse:
    _require_staff(request)
    profile = get_object_or_404(ModelProfile, pk=profile_id)
    report = profiles.profile_test(profile=profile)
    level = messages.SUCCESS if report.reachable else messages.ERROR
    messages.add_message(request, level, _report_text(profile, report))
    return redirect("model-profiles")


@require_POST
def project_default_set(request: HttpRequest, project_id: int) -> HttpResponse:
    _require_staff(request)
    project = get_object_or_404(Project, pk=project_id)
    form = ProfileChoice(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed profiles; nothing was changed.")
        return redirect("model-profiles")
    profile = form.cleaned_data["profile"]
    profiles.project_default_profile_set(user=request.user, project=project, profile=profile)
    name = profile.name if profile else "automatic (Ollama when it answers, else the scripted team)"
    messages.success(request, f"The default model of {project.name} is now {name}.")
    return redirect("model-profiles")


@require_safe
def teams_page(request: HttpRequest) -> HttpResponse:
    """Every team with its seats and the model each seat uses; staff choose a seat's model here."""
    teams = Team.objects.prefetch_related("seats__roles", "seats__model_profile").order_by("name")
    context: dict[str, Any] = {
        "teams": teams,
        "all_profiles": list(ModelProfile.objects.order_by("name")),
        "can_edit": request.user.is_staff,
        "fallback": "the run's profile (the one chosen when starting it, else the epic's, else the project default)",
    }
    return render(request, "agents/teams.html", context)


@require_POST
def seat_profile_set(request: HttpRequest, seat_id: int) -> HttpResponse:
    _require_staff(request)
    seat = get_object_or_404(Seat.objects.select_related("team"), pk=seat_id)
    form = ProfileChoice(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed profiles; nothing was changed.")
        return redirect("teams-page")
    profile = form.cleaned_data["profile"]
    profiles.seat_profile_set(user=request.user, seat=seat, profile=profile)
    name = f"{profile.name} ({selectors.model_label(profile)})" if profile else "the run's profile"
    messages.success(request, f"Seat {seat.team.name}/{seat.name} now uses {name}.")
    return redirect("teams-page")
