"""Approval of risky tool calls and answering a waiting card, through the real engine and the API.

The model is a fake Ollama server on 127.0.0.1: queued answers first, then a reactive responder whose
answer depends on what the conversation (or the card) shows it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from agents import services
from agents.models import ModelProfile, ProjectAgentSettings, Run, RunEvent, ToolApproval, Turn, TurnStep
from agents.services import seed_standard_configuration
from agents.workspaces import ProjectWorkspace, project_workspace_root
from boards.actors import Actor
from boards.models import Card, CardHistory, Comment, Epic, Membership, Project, ProjectRole
from boards.services import epic_import
from tests.agents.engine_support import drive
from tests.agents.fake_llm import FakeLLMServer, RecordedRequest, Reply, ollama_stream

pytestmark = pytest.mark.django_db(transaction=True)

FILE = "notes/old.txt"


def call(tool: str, **args: Any) -> Reply:
    text = "I act.\n```json\n" + json.dumps({"tool": tool, "args": args}) + "\n```"
    return ollama_stream([text[i : i + 30] for i in range(0, len(text), 30)])


def chats(server: FakeLLMServer) -> list[dict[str, Any]]:
    return [request.json() for request in server.requests if request.path == "/api/chat"]


@pytest.fixture
def data_dir(settings: Any, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path
    return tmp_path


def make_epic(slug: str, server: FakeLLMServer) -> Epic:
    seed_standard_configuration()
    project = Project.objects.create(name=slug.title(), slug=slug)
    profile = ModelProfile.objects.create(
        name=f"fake-{slug}",
        provider="ollama",
        base_url=server.base_url,
        model="fake:1b",
        context_size=4096,
        timeout_seconds=5,
        retry_attempts=1,
    )
    ProjectAgentSettings.objects.create(project=project, default_model_profile=profile)
    return epic_import(
        project=project,
        data={
            "name": f"{slug} work",
            "team": "standard",
            "cards": [{"summary": "Tidy up", "seat": "senior_developer"}],
        },
        actor=Actor.orket("test"),
    )


def member(project: Project, make_user: Callable[..., Any], name: str, role: str = ProjectRole.MEMBER) -> Any:
    user = make_user(name)
    Membership.objects.create(project=project, user=user, role=role)
    return user


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def start_until_waiting(epic: Epic) -> tuple[Run, Turn, ToolApproval]:
    """Start a run and execute its first turn, which writes the file, then asks to delete it."""
    run = services.run_start(epic=epic)
    services.run_advance(run_id=run.pk)
    turn = Turn.objects.get(run=run, number=1)
    services.turn_execute(turn_id=turn.pk)
    services.run_advance(run_id=run.pk)
    turn.refresh_from_db()
    return Run.objects.get(pk=run.pk), turn, ToolApproval.objects.get(turn=turn)


def worktree_file(epic: Epic, path: str) -> Path:
    workspace = ProjectWorkspace(project_workspace_root(Path(_data_dir()), epic.project_id))
    card = Card.objects.get(epic=epic)
    return workspace.card_worktree(card.pk) / path


def _data_dir() -> str:
    from django.conf import settings

    return str(settings.DATA_DIR)


def test_a_listed_call_waits_for_approval_and_approve_runs_it_and_resumes_at_that_step(
    data_dir: Path, make_user: Callable[..., Any], fake_llm: FakeLLMServer
) -> None:
    epic = make_epic("approve", fake_llm)
    fake_llm.queue(
        call("write_file", path=FILE, content="stale\n"),
        call("delete_file", path=FILE, confirm=True),
        call("finish_turn", summary="Removed the stale file."),
    )
    run, turn, approval = start_until_waiting(epic)
    card = Card.objects.get(epic=epic)

    # Stopped before the call: nothing deleted, the turn waits, the card waits for input, the run goes on.
    assert worktree_file(epic, FILE).read_text() == "stale\n"
    assert (turn.status, card.status, card.wait_reason, run.status) == ("waiting", "blocked", "input", "running")
    assert (approval.status, approval.tool, approval.step_number, approval.call_index) == (
        "pending",
        "delete_file",
        2,
        0,
    )
    assert approval.arguments == {"path": FILE, "confirm": True}
    assert len(chats(fake_llm)) == 2
    assert TurnStep.objects.get(turn=turn, number=2).finished_at is None

    maintainer = member(epic.project, make_user, "mia", ProjectRole.MAINTAINER)
    answer = client_for(maintainer).post(
        f"/api/approvals/{approval.pk}/decide/", {"decision": "approve"}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["decided_by"] == "mia"
    again = client_for(maintainer).post(f"/api/approvals/{approval.pk}/decide/", {"decision": "approve"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "already_decided"

    services.turn_execute(turn_id=turn.pk)  # what the decision queued; a worker would take it
    turn.refresh_from_db()
    assert not worktree_file(epic, FILE).exists()
    assert turn.status == "succeeded" and turn.outcome == "Removed the stale file."
    # Step 2 was not asked again: three model calls for three steps.
    assert len(chats(fake_llm)) == 3
    steps = list(TurnStep.objects.filter(turn=turn).order_by("number"))
    assert [step.number for step in steps] == [1, 2, 3]
    deleted = steps[1].calls[0]
    assert (deleted["decision"], deleted["approved_by"]) == ("executed", "mia")
    kinds = list(RunEvent.objects.filter(run=run).values_list("kind", flat=True))
    for kind in ("approval.requested", "turn.waiting", "approval.decided", "turn.resumed"):
        assert kind in kinds
    decision = CardHistory.objects.get(card=card, event="decision")
    assert decision.actor_user == maintainer and "mia approved delete_file" in decision.reason
    assert "step 2" in decision.reason


def rejection_seen(request: RecordedRequest) -> Reply:
    """Step 3 onwards: the model repeats what the observation of its rejected call told it."""
    last = request.json()["messages"][-1]["content"]
    match = re.search(r"REJECTED: (rejected by .*?)\. The call was not run", last)
    heard = match.group(1) if match else "nothing"
    return call("finish_turn", summary=f"Heard: {heard}")


def test_reject_sends_the_reason_to_the_model_as_the_calls_observation(
    data_dir: Path, make_user: Callable[..., Any]
) -> None:
    with FakeLLMServer(responder=rejection_seen) as server:
        epic = make_epic("reject", server)
        server.queue(call("write_file", path=FILE, content="keep me\n"), call("delete_file", path=FILE, confirm=True))
        _, turn, approval = start_until_waiting(epic)
        person = member(epic.project, make_user, "rob")
        refused = client_for(person).post(
            f"/api/approvals/{approval.pk}/decide/", {"decision": "reject"}, format="json"
        )
        assert refused.status_code == 400 and refused.json()["code"] == "reason_required"
        decided = client_for(person).post(
            f"/api/approvals/{approval.pk}/decide/",
            {"decision": "reject", "reason": "the file is still used by the importer"},
            format="json",
        )
        assert decided.status_code == 200, decided.content
        services.turn_execute(turn_id=turn.pk)
        requests = len(chats(server))
    turn.refresh_from_db()
    assert worktree_file(epic, FILE).read_text() == "keep me\n"
    assert turn.outcome == "Heard: rejected by rob: the file is still used by the importer"
    assert requests == 3
    step = TurnStep.objects.get(turn=turn, number=2)
    assert step.calls[0]["decision"] == "rejected" and step.finished_at is not None
    card = Card.objects.get(epic=epic)
    assert CardHistory.objects.filter(
        card=card, event="decision", actor_user=person, reason__contains="rejected"
    ).exists()


def test_deciding_needs_a_member_of_the_approvals_project(
    data_dir: Path, make_user: Callable[..., Any], fake_llm: FakeLLMServer
) -> None:
    epic = make_epic("guarded", fake_llm)
    fake_llm.queue(call("write_file", path=FILE, content="x\n"), call("delete_file", path=FILE, confirm=True))
    _, turn, approval = start_until_waiting(epic)
    viewer = member(epic.project, make_user, "vic", ProjectRole.VIEWER)
    other = Project.objects.create(name="Other", slug="other")
    stranger = member(other, make_user, "sam", ProjectRole.MAINTAINER)
    body = {"decision": "approve"}
    assert client_for(viewer).post(f"/api/approvals/{approval.pk}/decide/", body, format="json").status_code == 403
    assert client_for(stranger).post(f"/api/approvals/{approval.pk}/decide/", body, format="json").status_code == 404
    card = Card.objects.get(epic=epic)
    assert client_for(stranger).get(f"/api/cards/{card.pk}/waiting/").status_code == 404
    seen = client_for(viewer).get(f"/api/cards/{card.pk}/waiting/").json()
    assert seen["approvals"][0]["status"] == "pending" and "delete_file" in seen["question"]
    # The card waits for a decision, not an answer.
    owner = member(epic.project, make_user, "olga")
    answered = client_for(owner).post(f"/api/cards/{card.pk}/answer/", {"body": "go"}, format="json")
    assert answered.status_code == 409 and answered.json()["code"] == "approval_pending"
    approval.refresh_from_db()
    assert approval.status == "pending" and Turn.objects.get(pk=turn.pk).status == "waiting"


def test_the_approval_list_is_the_projects_and_maintainers_change_it(
    data_dir: Path, make_user: Callable[..., Any], fake_llm: FakeLLMServer
) -> None:
    epic = make_epic("listed", fake_llm)
    project = epic.project
    maintainer = member(project, make_user, "max", ProjectRole.MAINTAINER)
    person = member(project, make_user, "pat")
    url = f"/api/projects/{project.pk}/approval-tools/"
    assert client_for(person).get(url).json()["tools"] == ["delete_file", "run_command"]
    assert client_for(person).put(url, {"tools": ["write_file"]}, format="json").status_code == 403
    refused = client_for(maintainer).put(url, {"tools": ["launch_rockets"]}, format="json")
    assert refused.status_code == 400
    assert client_for(maintainer).put(url, {"tools": ["write_file"]}, format="json").json()["tools"] == ["write_file"]
    # Now writing waits and deleting does not.
    fake_llm.queue(call("write_file", path=FILE, content="new\n"))
    _, _, approval = start_until_waiting(epic)
    assert approval.tool == "write_file" and approval.step_number == 1
    assert not worktree_file(epic, FILE).exists()


def answer_heard(request: RecordedRequest) -> Reply:
    """The coder asks which colour, and once a person's comment names one, writes it down."""
    card_message = request.json()["messages"][1]["content"]
    found = re.search(r"## Comments from people \(newest first\)\n- [^:]+: (.*)", card_message)
    if found is None:
        return call("update_card_status", status="blocked", wait_reason="input", reason="Which colour should it be?")
    return call("write_file", path="notes/colour.txt", content=found.group(1) + "\n")


def test_an_answer_moves_the_card_to_ready_and_the_next_turn_sees_it(
    data_dir: Path, make_user: Callable[..., Any]
) -> None:
    with FakeLLMServer(responder=answer_heard) as server:
        epic = make_epic("answer", server)
        card = Card.objects.get(epic=epic)
        run = services.run_start(epic=epic)
        finished = drive(run.pk)
        card.refresh_from_db()
        assert (finished.status, card.status, card.wait_reason) == ("failed", "blocked", "input")
        person = member(epic.project, make_user, "ann")
        waiting = client_for(person).get(f"/api/cards/{card.pk}/waiting/").json()
        assert "Which colour should it be?" in waiting["question"] and waiting["run"] is None
        answered = client_for(person).post(f"/api/cards/{card.pk}/answer/", {"body": "Teal, please."}, format="json")
        assert answered.status_code == 200, answered.content
        assert answered.json() == {"card": card.pk, "status": "ready", "run": None, "resumed": False}
        again = client_for(person).post(f"/api/cards/{card.pk}/answer/", {"body": "Teal!"}, format="json")
        assert again.status_code == 409 and again.json()["code"] == "not_waiting"
        assert Comment.objects.filter(card=card, author=person, body="Teal, please.").exists()
        history = CardHistory.objects.filter(card=card).latest("id")
        assert (history.from_status, history.to_status, history.actor_user) == ("blocked", "ready", person)

        second = services.run_start(epic=epic)
        Run.objects.filter(pk=second.pk).update(turns_per_card=1)
        drive(second.pk)
    assert worktree_file(epic, "notes/colour.txt").read_text() == "Teal, please.\n"


def test_the_approval_settings_page_lets_only_maintainers_change_the_list(
    data_dir: Path, make_user: Callable[..., Any], client: Any, fake_llm: FakeLLMServer
) -> None:
    project = make_epic("page", fake_llm).project
    url = f"/projects/{project.pk}/settings/approvals/"
    viewer = member(project, make_user, "vera", ProjectRole.VIEWER)
    client.force_login(viewer)
    page = client.get(url)
    assert page.status_code == 200 and b"delete_file" in page.content and b"Save approval list" not in page.content
    assert client.post(url, {"tools": ["write_file"]}).status_code == 403
    client.force_login(member(project, make_user, "mo", ProjectRole.MAINTAINER))
    assert client.post(url, {"tools": ["write_file", "delete_file"]}).status_code == 302
    assert sorted(ProjectAgentSettings.objects.get(project=project).approval_tools) == ["delete_file", "write_file"]
    assert client.post(url, {"tools": ["rm_rf"]}).status_code == 400
    settings_page = client.get(f"/projects/{project.pk}/settings/")
    assert url.encode() in settings_page.content


def finish_quietly(request: RecordedRequest) -> Reply:
    return call("finish_turn", summary="Nothing more to do.")


def test_a_worker_resumes_the_approved_turn_through_the_broker(data_dir: Path, make_user: Callable[..., Any]) -> None:
    """The decision's dispatch goes through the real broker to a real worker (Redis under
    ORKET_TEST_REDIS_URL), and the run, which waited meanwhile, goes on to its end."""
    import time

    from tests.agents.engine_support import wait_for_run, worker_thread

    with FakeLLMServer(responder=finish_quietly) as server:
        epic = make_epic("broker", server)
        server.queue(
            call("write_file", path=FILE, content="stale\n"),
            call("delete_file", path=FILE, confirm=True),
            call("finish_turn", summary="Removed the stale file."),
        )
        person = member(epic.project, make_user, "wes")
        with worker_thread():
            run = services.run_start(epic=epic)
            Run.objects.filter(pk=run.pk).update(turns_per_card=2)
            deadline = time.monotonic() + 60
            while not ToolApproval.objects.filter(run=run).exists() or Run.objects.get(pk=run.pk).last_seq == 0:
                assert time.monotonic() < deadline, "no approval was asked for"
                time.sleep(0.1)
            approval = ToolApproval.objects.get(run=run)
            deadline = time.monotonic() + 30
            while Turn.objects.get(pk=approval.turn_id).status != "waiting":
                assert time.monotonic() < deadline, "the turn did not wait"
                time.sleep(0.1)
            time.sleep(1.0)  # the run is advanced meanwhile and must not end while the turn waits
            assert Run.objects.get(pk=run.pk).status == "running"
            assert worktree_file(epic, FILE).exists()
            decided = client_for(person).post(
                f"/api/approvals/{approval.pk}/decide/", {"decision": "approve"}, format="json"
            )
            assert decided.status_code == 200, decided.content
            finished = wait_for_run(run.pk, timeout=60)
    assert finished.is_final
    assert not worktree_file(epic, FILE).exists()
    turn = Turn.objects.get(pk=approval.turn_id)
    assert turn.status == "succeeded" and turn.outcome == "Removed the stale file."
    assert [step.number for step in TurnStep.objects.filter(turn=turn).order_by("number")] == [1, 2, 3]
