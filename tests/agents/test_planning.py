"""Planning an epic with the architect: the scripted team's planning turn, the draft, and Accept through
boards' import service (nothing before, everything at once, nothing for a bad plan), who asked and who
accepted; a reactive fake model checks the planning prompt and a malformed plan's readable error."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser

from agents import planning
from agents.models import EpicPlan, ModelProfile, PlanStatus, ProjectAgentSettings
from boards import services as board_services
from boards.actors import Actor
from boards.errors import Forbidden
from boards.models import Card, CardDependency, Epic, Project, ProjectRole
from orket_site.seed import seed_first_run
from tests.agents.fake_llm import FakeLLMServer
from tests.agents.reactive_model import ReactivePlanner

pytestmark = pytest.mark.django_db

DESCRIPTION = """A small library of unit conversions.

- Convert metres to feet
- Convert kilograms to pounds
- Convert Celsius to Fahrenheit
"""


@pytest.fixture
def seeded(settings, tmp_path) -> None:
    settings.DATA_DIR = tmp_path
    seed_first_run()


@pytest.fixture
def epic(seeded: None, project: Project, member_of: Callable[..., AbstractUser]) -> Epic:
    maintainer = member_of(project, ProjectRole.MAINTAINER)
    return board_services.epic_create(
        project=project, actor=Actor.for_user(maintainer), name="Conversions", description=DESCRIPTION, team="standard"
    )


def _drafted(epic: Epic, user: AbstractUser, **kwargs: Any) -> EpicPlan:
    plan = planning.plan_request(epic=epic, user=user, **kwargs)
    drafted = planning.plan_draft(plan_id=plan.pk)
    assert drafted is not None
    return drafted


def test_the_scripted_architect_plans_from_the_description_and_nothing_exists_before_accept(
    epic: Epic, member_of: Callable[..., AbstractUser]
) -> None:
    asker = member_of(epic.project, ProjectRole.MEMBER)
    plan = _drafted(epic, asker)
    assert plan.status == PlanStatus.DRAFT, plan.error
    summaries = [card["summary"] for card in plan.document["cards"]]
    assert summaries[0] == "Design Conversions"
    assert summaries[1:] == ["Convert metres to feet", "Convert kilograms to pounds", "Convert Celsius to Fahrenheit"]
    assert all(card["depends_on"] == ["design"] for card in plan.document["cards"][1:])
    assert plan.problems == [] and plan.requested_by == asker and plan.seat == "lead_architect"
    assert [call["name"] for step in plan.steps for call in step["calls"]] == ["list_directory", "propose_plan"]
    assert DESCRIPTION.strip() in plan.messages[1]["content"]
    assert Card.objects.filter(epic=epic).count() == 0

    accepter = member_of(epic.project, ProjectRole.MEMBER)
    accepted = planning.plan_accept(plan=plan, user=accepter)
    assert accepted.status == PlanStatus.ACCEPTED and accepted.cards_created == 4
    assert accepted.requested_by == asker and accepted.accepted_by == accepter and accepted.accepted_at is not None
    cards = list(Card.objects.filter(epic=epic).order_by("rank"))
    assert [card.title for card in cards] == summaries
    assert CardDependency.objects.filter(card__epic=epic).count() == 3
    with pytest.raises(planning.PlanRefused):
        planning.plan_accept(plan=accepted, user=accepter)


def test_a_bad_plan_creates_nothing_and_names_the_cycle(epic: Epic, member_of: Callable[..., AbstractUser]) -> None:
    user = member_of(epic.project, ProjectRole.MEMBER)
    plan = _drafted(epic, user)
    document = json.loads(json.dumps(plan.document))
    document["cards"][0]["depends_on"] = ["item-1"]  # design <- item-1 <- design
    saved = planning.plan_save(plan=plan, document=document, user=user)
    assert any("cycle" in problem["message"] for problem in saved.problems)
    with pytest.raises(planning.PlanInvalid) as refused:
        planning.plan_accept(plan=saved, user=user)
    assert "'Design Conversions' -> 'Convert metres to feet' -> 'Design Conversions'" in refused.value.message
    document["cards"][0]["depends_on"] = []
    document["cards"][1]["seat"] = "nobody"
    with pytest.raises(planning.PlanInvalid) as unknown:
        planning.plan_accept(plan=saved, user=user, document=document)
    assert "no seat 'nobody'" in unknown.value.message
    assert Card.objects.filter(epic=epic).count() == 0
    assert EpicPlan.objects.get(pk=plan.pk).status == PlanStatus.DRAFT


def test_one_bad_card_at_the_end_refuses_the_whole_plan(epic: Epic, member_of: Callable[..., AbstractUser]) -> None:
    user = member_of(epic.project, ProjectRole.MEMBER)
    plan = _drafted(epic, user)
    document = json.loads(json.dumps(plan.document))
    document["cards"][-1]["summary"] = "x" * 400  # longer than a title may be
    with pytest.raises(planning.PlanInvalid):
        planning.plan_accept(plan=plan, user=user, document=document)
    assert Card.objects.filter(epic=epic).count() == 0


def test_viewers_may_not_plan_or_accept_and_planning_needs_a_description(
    epic: Epic, member_of: Callable[..., AbstractUser]
) -> None:
    viewer = member_of(epic.project, ProjectRole.VIEWER)
    with pytest.raises(Forbidden):
        planning.plan_request(epic=epic, user=viewer)
    member = member_of(epic.project, ProjectRole.MEMBER)
    plan = _drafted(epic, member)
    with pytest.raises(Forbidden):
        planning.plan_accept(plan=plan, user=viewer)
    bare = board_services.epic_create(project=epic.project, actor=Actor.for_user(member), name="Empty")
    with pytest.raises(planning.PlanRefused) as refused:
        planning.plan_request(epic=bare, user=member)
    assert refused.value.code == "description_required"
    planning.plan_accept(plan=plan, user=member)
    with pytest.raises(planning.PlanRefused) as has_cards:
        planning.plan_request(epic=epic, user=member)
    assert has_cards.value.code == "epic_has_cards"
    replanned = _drafted(epic, member, replan=True)
    assert replanned.status == PlanStatus.DRAFT and replanned.replan


@pytest.fixture
def fake_profile(epic: Epic) -> Callable[[FakeLLMServer], ModelProfile]:
    def make(server: FakeLLMServer) -> ModelProfile:
        profile = ModelProfile.objects.create(
            name="fake-planner",
            provider="openai",
            base_url=server.base_url,
            model="planner",
            supports_native_tools=False,
            retry_attempts=1,
        )
        ProjectAgentSettings.objects.update_or_create(project=epic.project, defaults={"default_model_profile": profile})
        return profile

    return make


def _repository_file(settings, epic: Epic) -> None:
    from agents.workspaces import ProjectWorkspace, project_workspace_root

    workspace = ProjectWorkspace(project_workspace_root(settings.DATA_DIR, epic.project_id))
    workspace.ensure()
    (workspace.repo / "README.md").write_text("hello from the repository\n")


def test_a_model_plans_with_the_description_in_its_prompt(
    settings, epic: Epic, member_of: Callable[..., AbstractUser], fake_profile: Callable[..., ModelProfile]
) -> None:
    _repository_file(settings, epic)
    model = ReactivePlanner(DESCRIPTION, [{"id": "a", "summary": "Convert lengths", "seat": "senior_developer"}])
    with FakeLLMServer(responder=model) as server:
        fake_profile(server)
        plan = _drafted(epic, member_of(epic.project, ProjectRole.MEMBER))
    assert model.errors == []
    assert plan.status == PlanStatus.DRAFT, plan.error
    assert [card["summary"] for card in plan.document["cards"]] == ["Convert lengths"]
    assert plan.tokens_in == 100 and plan.tokens_out == 18


def test_a_malformed_plan_fails_with_a_readable_error(
    settings,
    epic: Epic,
    member_of: Callable[..., AbstractUser],
    fake_profile: Callable[..., ModelProfile],
    client,
) -> None:
    _repository_file(settings, epic)
    model = ReactivePlanner(DESCRIPTION, "convert all the units")
    user = member_of(epic.project, ProjectRole.MEMBER)
    with FakeLLMServer(responder=model) as server:
        fake_profile(server)
        plan = _drafted(epic, user)
    assert model.errors == []
    assert plan.status == PlanStatus.FAILED
    assert "cards must be a list of card objects, not a string" in plan.error
    assert "The plan was refused" in plan.steps[1]["calls"][0]["message"]  # the model was told, and tried again
    assert Card.objects.filter(epic=epic).count() == 0
    client.force_login(user)
    page = client.get(f"/plans/{plan.pk}/")
    assert page.status_code == 200
    assert b"cards must be a list of card objects, not a string" in page.content


def test_a_plan_left_drafting_by_a_lost_worker_is_replaced_when_asked_again(
    epic: Epic, member_of: Callable[..., AbstractUser]
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    user = member_of(epic.project, ProjectRole.MEMBER)
    lost = planning.plan_request(epic=epic, user=user)
    with pytest.raises(planning.PlanRefused) as busy:
        planning.plan_request(epic=epic, user=user)
    assert busy.value.code == "plan_in_progress"
    EpicPlan.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    again = _drafted(epic, user)
    assert again.status == PlanStatus.DRAFT
    assert EpicPlan.objects.get(pk=lost.pk).status == PlanStatus.FAILED
