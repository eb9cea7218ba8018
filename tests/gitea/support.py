"""Helpers for the Gitea tests: a seeded project with the standard team, cards put in review, links."""

from __future__ import annotations

from typing import Any

from agents.gitea import services
from agents.gitea.models import GiteaLink, PullRequestLink
from agents.models import ModelProfile, ProjectAgentSettings
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, Epic, Project
from orket_site.seed import seed_first_run

TOKEN = "gitea-test-token"
CODER = Actor.for_seat("senior_developer", ("coder",))


def seeded_project() -> Project:
    """The demo project with the standard team; runs use the scripted profile (no Ollama probe)."""
    seed_first_run()
    project = Project.objects.get(slug="demo")
    ProjectAgentSettings.objects.update_or_create(
        project=project, defaults={"default_model_profile": ModelProfile.objects.get(name="scripted-demo")}
    )
    return project


def new_card(project: Project, title: str = "Add the greeting endpoint", **fields: Any) -> Card:
    epic = Epic.objects.filter(project=project, name="Gitea work").first() or board_services.epic_create(
        project=project, actor=Actor.orket("test"), name="Gitea work", team="standard"
    )
    fields.setdefault("seat", "senior_developer")
    fields.setdefault("description", "Greet people by name over HTTP.")
    fields.setdefault("acceptance_criteria", "GET /greet?name=Ada answers Hello, Ada.")
    return board_services.card_create(epic=epic, actor=Actor.orket("test"), title=title, **fields)


def to_review(card: Card) -> Card:
    card = board_services.card_transition(card=card, to_status="in_progress", actor=CODER, reason="test")
    return board_services.card_transition(card=card, to_status="code_review", actor=CODER, reason="test")


def link(
    project: Project, *, base_url: str = "http://127.0.0.1:9", full_name: str = "orket/demo", **policy: Any
) -> tuple[GiteaLink, str]:
    owner, repo = full_name.split("/")
    saved = services.gitea_link_save(project=project, base_url=base_url, owner=owner, repo=repo, token=TOKEN, **policy)
    return saved.link, saved.new_secret


def pull_for(card: Card, number: int, *, head_sha: str = "", url: str = "") -> PullRequestLink:
    pull = PullRequestLink.objects.create(
        project_id=card.project_id,
        card=card,
        number=number,
        url=url or f"http://gitea.invalid/pulls/{number}",
        head_branch=f"card/{card.pk}",
        head_sha=head_sha,
    )
    board_services.card_review_record(
        card=card, actor=Actor.orket("test"), pull_request={"number": number, "url": pull.url, "state": "open"}
    )
    return pull
