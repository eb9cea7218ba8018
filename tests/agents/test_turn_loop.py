"""The turn loop through the real engine: who works a card and who reviews it, the verification requirement,
people's comments in the prompt, and the limits of a turn (steps, reminders, token budgets, the model used).

The scripted team plays the standard team; where a model must misbehave or be watched, it is a fake Ollama
server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from agents import services
from agents.models import ModelProfile, ProjectAgentSettings, Run, Seat, Turn
from agents.services import seed_standard_configuration
from agents.workspaces import ProjectWorkspace, git_env, project_workspace_root
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, CardHistory, Comment, Epic, Membership, Project, ProjectRole
from boards.services import epic_import
from sandboxes import verification
from sandboxes.models import VerificationRun
from tests.agents.engine_support import drive
from tests.agents.fake_llm import FakeLLMServer, Reply, ollama_stream

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_FOR_PERSON = "wait for review by a person"


def make_epic(*, slug: str, cards: list[dict[str, Any]], require_verification: bool = False) -> Epic:
    seed_standard_configuration()
    project = Project.objects.create(name=slug.title(), slug=slug, require_verification=require_verification)
    ProjectAgentSettings.objects.create(
        project=project, default_model_profile=ModelProfile.objects.get(name="scripted-demo")
    )
    return epic_import(
        project=project, data={"name": f"{slug} work", "team": "standard", "cards": cards}, actor=Actor.orket("test")
    )


@pytest.fixture
def data_dir(settings: Any, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path
    return tmp_path


def scripted() -> ModelProfile:
    return ModelProfile.objects.get(name="scripted-demo")


def maintainer_of(project: Project, make_user: Callable[..., Any]) -> Any:
    user = make_user(f"maintainer-{project.slug}")
    Membership.objects.create(project=project, user=user, role=ProjectRole.MAINTAINER)
    return user


def ollama_profile(server: FakeLLMServer, **fields: Any) -> ModelProfile:
    return ModelProfile.objects.create(
        name=fields.pop("name", "fake-ollama"),
        provider="ollama",
        base_url=server.base_url,
        model="fake:1b",
        context_size=4096,
        timeout_seconds=5,
        retry_attempts=1,
        **fields,
    )


def call(tool: str, **args: Any) -> Reply:
    text = "I act.\n```json\n" + json.dumps({"tool": tool, "args": args}) + "\n```"
    return ollama_stream([text[i : i + 30] for i in range(0, len(text), 30)])


def chat_bodies(server: FakeLLMServer) -> list[dict[str, Any]]:
    return [r.json() for r in server.requests if r.path == "/api/chat"]


# -- (i) every seat of the standard team as a card's assignee ---------------------------------------------


def test_every_seat_can_be_assigned_and_the_guards_own_card_waits_for_a_person(data_dir: Path, make_user) -> None:
    epic = make_epic(
        slug="seats",
        cards=[
            {"summary": "Design the store", "seat": "lead_architect"},
            {"summary": "Build the store", "seat": "senior_developer"},
            {"summary": "Check the store", "seat": "quality_assurance"},
        ],
    )
    run = drive(services.run_start(epic=epic, profile=scripted()).pk)
    design, build, check = Card.objects.filter(epic=epic).order_by("rank", "id")
    assert run.status == "succeeded", run.status_reason
    assert WAIT_FOR_PERSON in run.status_reason
    assert (design.status, build.status) == ("done", "done")
    assert (check.status, check.wait_reason) == ("blocked", "review")
    # Each card was worked by its assigned seat, in the role that seat holds.
    for card, seat, role in (
        (design, "lead_architect", "architect"),
        (build, "senior_developer", "coder"),
        (check, "quality_assurance", "integrity_guard"),
    ):
        first = Turn.objects.filter(run=run, card=card).order_by("number").first()
        assert (first.seat, first.role, first.purpose) == (seat, role, "work")
    for card in (design, build):
        assert CardHistory.objects.get(card=card, to_status="done").actor_seat == "quality_assurance"
    assert not Turn.objects.filter(run=run, card=check, purpose="review").exists()
    assert "a person must review the card" in Comment.objects.filter(card=check).latest("id").body
    epic.refresh_from_db()
    assert epic.status == "in_progress"

    # A maintainer approves the guard's card, as the state machine allows; the next run finishes the epic.
    person = Actor.for_user(maintainer_of(epic.project, make_user))
    for status in ("in_progress", "code_review", "done"):
        check = board_services.card_transition(card=check, to_status=status, actor=person, reason="Approved.")
    assert check.status == "done"
    second = drive(services.run_start(epic=epic, profile=scripted()).pk)
    assert second.status == "succeeded", second.status_reason
    assert not Turn.objects.filter(run=second).exists()
    epic.refresh_from_db()
    assert epic.status == "done"


# -- (ii) the verification requirement ----------------------------------------------------------------------


FIXTURE = {"name": "doubling", "scenarios": [{"id": "doubles", "description": "doubles", "input": 21, "expected": 42}]}
VERIFY_PY = "def verify(value):\n    return value * 2\n"


def seed_main(epic: Epic, files: dict[str, str]) -> None:
    workspace = ProjectWorkspace(project_workspace_root(settings.DATA_DIR, epic.project_id))
    workspace.ensure()
    for name, text in files.items():
        (workspace.repo / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace.repo / name).write_text(text)
    for args in (["add", "--all"], ["commit", "--quiet", "-m", "The project's code"]):
        subprocess.run(["git", *args], cwd=workspace.repo, env=git_env(), check=True, capture_output=True)


def coder_card_epic(slug: str) -> Epic:
    return make_epic(
        slug=slug, cards=[{"summary": "Build the doubler", "seat": "senior_developer"}], require_verification=True
    )


def test_without_a_passed_verification_the_guards_done_is_refused_and_the_card_waits_for_review(
    data_dir: Path,
) -> None:
    epic = coder_card_epic("unverified")
    run = drive(services.run_start(epic=epic, profile=scripted()).pk)
    card = Card.objects.get(epic=epic)
    assert (card.status, card.wait_reason) == ("blocked", "review")
    assert run.status == "succeeded" and WAIT_FOR_PERSON in run.status_reason
    review = Turn.objects.get(run=run, purpose="review")
    refused = [c for c in review.tool_calls if c.get("decision") == "refused"]
    assert [(c["name"], c["arguments"]["status"], c["rule"]) for c in refused] == [
        ("update_card_status", "done", "verification_required")
    ]
    # The verification said not_configured, which is not a pass.
    ran = next(c for c in review.tool_calls if c["name"] == "run_verification")
    assert ran["result"]["status"] == "not_configured"
    comment = Comment.objects.filter(card=card).latest("id").body
    assert "waits for review by a person" in comment and "has not passed a verification" in comment
    assert not CardHistory.objects.filter(card=card, to_status="done").exists()


def test_a_passing_fixture_run_by_the_guard_lets_it_finish_the_card(
    data_dir: Path, make_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    monkeypatch.setenv("ORKET_VERIFICATION_TIMEOUT", "30")
    epic = coder_card_epic("verified")
    seed_main(epic, {"verify.py": VERIFY_PY})
    card = Card.objects.get(epic=epic)
    verification.fixture_upload(
        card=card, raw=json.dumps(FIXTURE).encode(), name="doubling", user=maintainer_of(epic.project, make_user)
    )
    run = drive(services.run_start(epic=epic, profile=scripted()).pk)
    card.refresh_from_db()
    assert run.status == "succeeded", run.status_reason
    assert (card.status, card.last_verification) == ("done", "passed")
    checked = VerificationRun.objects.get(card=card, requested_by="agent")  # the guard's run_verification
    assert (checked.status, checked.passed) == ("passed", 1)
    assert CardHistory.objects.get(card=card, to_status="done").actor_seat == "quality_assurance"


def test_a_code_change_after_a_passed_verification_clears_it(data_dir: Path) -> None:
    """A pass recorded before the coder changed the code no longer speaks for it: the coder's commit clears
    it, and the guard may not finish the card on the stale pass."""
    epic = coder_card_epic("stale")
    card = Card.objects.get(epic=epic)
    board_services.card_record_verification(card=card, result="passed", actor=Actor.orket("verification"))
    run = drive(services.run_start(epic=epic, profile=scripted()).pk)
    card.refresh_from_db()
    assert card.last_verification == ""
    cleared = CardHistory.objects.get(card=card, changes__last_verification=["passed", ""])
    assert cleared.actor_seat == "engine" and "no longer applies" in cleared.reason
    commit = run.events.filter(kind="workspace.commit", card_id=card.pk).earliest("seq").data["sha"]
    assert commit[:12] in cleared.reason
    assert (card.status, card.wait_reason) == ("blocked", "review")


# -- (iii) people's comments reach the next prompt ---------------------------------------------------------


def people_section(card_message: str) -> list[str]:
    match = re.search(r"## Comments from people \(newest first\)\n((?:- .*\n?)+)", card_message)
    return [line[2:] for line in match.group(1).splitlines()] if match else []


def test_peoples_comments_reach_the_next_prompt_newest_first_and_the_agents_own_do_not(
    data_dir: Path, make_user, fake_llm: FakeLLMServer
) -> None:
    epic = make_epic(slug="comments", cards=[{"summary": "Write the parser", "seat": "senior_developer"}])
    card = Card.objects.get(epic=epic)
    person = Actor.for_user(maintainer_of(epic.project, make_user))
    board_services.comment_add(card=card, actor=person, body="First: keep it small.")
    board_services.comment_add(card=card, actor=Actor.for_seat("lead_architect"), body="Architect remark.")
    board_services.comment_add(card=card, actor=person, body="Second: add a test.")
    fake_llm.queue(
        call("add_comment", body="Agent progress report."),
        call("finish_turn", summary="Commented."),
        call("finish_turn", summary="Read the comments."),
    )
    run = services.run_start(epic=epic, profile=ollama_profile(fake_llm))
    Run.objects.filter(pk=run.pk).update(turns_per_card=2)
    services.run_advance(run_id=run.pk)
    services.turn_execute(turn_id=Turn.objects.get(run=run, number=1).pk)
    board_services.comment_add(card=card, actor=person, body="Third:   the newest\nof all.")
    drive(run.pk)

    first, _, second = chat_bodies(fake_llm)
    username = person.user.username
    assert people_section(first["messages"][1]["content"]) == [
        f"{username}: Second: add a test.",
        f"{username}: First: keep it small.",
    ]
    assert people_section(second["messages"][1]["content"]) == [
        f"{username}: Third: the newest of all.",
        f"{username}: Second: add a test.",
        f"{username}: First: keep it small.",
    ]
    for body in (first, second):
        prompt = body["messages"][1]["content"]
        assert "Architect remark." not in prompt and "Agent progress report." not in prompt
    assert Comment.objects.filter(card=card, author_seat="senior_developer", body="Agent progress report.").exists()


# -- (iv) the limits of a turn -------------------------------------------------------------------------------


def one_card(slug: str) -> Epic:
    return make_epic(slug=slug, cards=[{"summary": "Keep busy", "seat": "senior_developer"}])


def test_a_turn_ends_at_the_profiles_step_limit(data_dir: Path, fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(*[call("add_comment", body=f"Still busy ({n}).") for n in range(1, 6)])
    epic = one_card("steps")
    run = services.run_start(epic=epic, profile=ollama_profile(fake_llm, max_steps=3))
    Run.objects.filter(pk=run.pk).update(turns_per_card=1)
    drive(run.pk)
    turn = Turn.objects.get(run=run)
    assert turn.outcome == "Reached the limit of 3 steps in one turn."
    assert turn.steps.count() == 3 and len(chat_bodies(fake_llm)) == 3
    assert Comment.objects.filter(card__epic=epic, author_seat="senior_developer").count() == 3


def test_an_answer_without_a_call_gets_one_reminder_and_the_second_ends_the_turn(
    data_dir: Path, fake_llm: FakeLLMServer
) -> None:
    prose = ollama_stream(["I would start by looking around, ", "but I will not call anything."])
    fake_llm.queue(prose, prose, call("add_comment", body="Too late."))
    epic = one_card("reminder")
    run = services.run_start(epic=epic, profile=ollama_profile(fake_llm))
    Run.objects.filter(pk=run.pk).update(turns_per_card=1)
    drive(run.pk)
    turn = Turn.objects.get(run=run)
    assert turn.outcome == "The model made no tool calls, even after a reminder of the protocol."
    first, second = chat_bodies(fake_llm)
    assert not any(m["content"].startswith("ORKET-REMINDER:") for m in first["messages"])
    reminders = [m for m in second["messages"] if m["content"].startswith("ORKET-REMINDER:")]
    assert len(reminders) == 1
    assert second["messages"][-1]["content"].startswith("ORKET-REMINDER:")
    assert [s.outcome for s in turn.steps.order_by("number")] == ["no_call", "no_call"]


def test_a_cards_token_budget_makes_it_wait_for_a_person(data_dir: Path, fake_llm: FakeLLMServer) -> None:
    # Each answer counts 26 prompt and 12 answer tokens: after two answers (76) the budget of 50 is spent.
    fake_llm.queue(*[call("add_comment", body=f"Busy ({n}).") for n in range(1, 6)])
    epic = one_card("budget")
    run = services.run_start(epic=epic, profile=ollama_profile(fake_llm))
    Run.objects.filter(pk=run.pk).update(card_token_budget=50)
    run = drive(run.pk)
    card = Card.objects.get(epic=epic)
    assert (card.status, card.wait_reason) == ("blocked", "input")
    turn = Turn.objects.get(run=run)
    assert "used its budget of 50 tokens" in turn.outcome
    assert len(chat_bodies(fake_llm)) == 2 and (turn.tokens_in, turn.tokens_out) == (52, 24)
    assert "budget of 50 tokens" in Comment.objects.filter(card=card).latest("id").body
    assert run.status == "failed"


def test_the_seats_model_profile_is_used_unless_the_run_names_one(data_dir: Path, fake_llm: FakeLLMServer) -> None:
    epic = one_card("seatmodel")
    card = Card.objects.get(epic=epic)
    fake = ollama_profile(fake_llm, name="seat-model")
    Seat.objects.filter(team__name="standard", name="senior_developer").update(model_profile=fake)
    fake_llm.queue(
        call("write_file", path="busy.py", content="BUSY = True\n"),
        call("update_card_status", status="code_review", reason="Done."),
    )
    run = services.run_start(epic=epic)  # the project's default: the scripted team
    assert (run.model_profile.name, run.profile_is_override) == ("scripted-demo", False)
    run = drive(run.pk)
    assert run.status == "succeeded", run.status_reason
    work, review = Turn.objects.filter(run=run).order_by("id")
    assert (work.seat, work.model_profile_id, work.provider, work.model) == (
        "senior_developer",
        fake.pk,
        "ollama",
        "fake:1b",
    )
    assert (review.seat, review.model_profile.name, review.provider) == (
        "quality_assurance",
        "scripted-demo",
        "scripted",
    )
    assert len(chat_bodies(fake_llm)) == 2
    card.refresh_from_db()
    assert card.status == "done"

    # A run started with an explicit profile overrides the seat's.
    other = one_card("override")
    run = drive(services.run_start(epic=other, profile=scripted()).pk)
    assert run.status == "succeeded", run.status_reason
    assert set(Turn.objects.filter(run=run).values_list("provider", flat=True)) == {"scripted"}
    assert len(chat_bodies(fake_llm)) == 2  # the fake was not asked again
