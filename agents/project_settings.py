"""The project settings page as people see it: the sections boards owns plus the default model
profile, which agents owns.

It is composed here because agents may know boards while boards knows no other app: boards renders
the page and applies its own sections, and this module hands it the profile section, whose write goes
through `agents.profiles.project_default_profile_set`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse

from agents import profiles
from agents.models import ModelProfile, ProjectAgentSettings
from boards import settings_pages
from boards.actors import Actor
from boards.models import Project
from boards.settings_pages import FormProblems, SettingsSection, form_errors

AUTOMATIC_PROFILE = ""
AUTOMATIC_PROFILE_LABEL = "Automatic: Ollama when it answers, else scripted"


class DefaultProfileForm(forms.Form):
    profile = forms.ChoiceField(label="Default model profile", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["profile"].choices = [(AUTOMATIC_PROFILE, AUTOMATIC_PROFILE_LABEL)] + [
            (str(profile.pk), f"{profile.name} ({profile.get_provider_display()}, {profile.model})")
            for profile in ModelProfile.objects.order_by("name")
        ]


def _current_profile_id(project: Project) -> str:
    settings_row = ProjectAgentSettings.objects.filter(project=project).first()
    if settings_row is None or settings_row.default_model_profile_id is None:
        return AUTOMATIC_PROFILE
    return str(settings_row.default_model_profile_id)


def _profile_context(project: Project) -> dict[str, Any]:
    form = DefaultProfileForm(initial={"profile": _current_profile_id(project)})
    return {"profile_choices": form.fields["profile"].choices, "current_profile": form.initial["profile"]}


def _profile_apply(project: Project, actor: Actor, data: Any) -> str:
    form = DefaultProfileForm(data)
    if not form.is_valid():
        raise FormProblems(form_errors(form))
    choice = form.cleaned_data["profile"]
    profile = ModelProfile.objects.get(pk=int(choice)) if choice else None
    profiles.project_default_profile_set(user=actor.user, project=project, profile=profile)
    return f"The default model profile is now {profile.name if profile else 'automatic'}."


DEFAULT_PROFILE_SECTION = SettingsSection(
    name="profile",
    template="agents/project_settings_profile.html",
    context=_profile_context,
    apply=_profile_apply,
)


def project_settings_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """/projects/<id>/settings/: boards' settings page with the default model profile section."""
    return settings_pages.project_settings(request, project_id, sections=(DEFAULT_PROFILE_SECTION,))
