"""How the engine handles real model servers that misbehave: refused calls, loops, garbage, outages.

The models are fake HTTP servers on 127.0.0.1 speaking Ollama's NDJSON protocol."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from django.db import connection

from agents import leases, services, turns
from agents.models import ModelProfile, Run, Turn
from agents.services import seed_standard_configuration
from boards.actors import Actor
from boards.models import Card, Comment, Epic, Project
from boards.services import epic_import
from tests.agents.engine_support import drive
from tests.agents.fake_llm import FakeLLMServer, RecordedRequest, Reply, closed_port_url, json_error, ollama_stream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_card_epic(settings, tmp_path: Path) -> Epic:
    settings.DATA_DIR = tmp_path
    seed_standard_configuration()
    project = Project.objects.create(name="Lab", slug="lab", require_verification=False)
    return epic_import(
        project=project,
        data={
            "name": "Lab work",
            "team": "standard",
            "cards": [{"summary": "Write the adder", "seat": "senior_developer"}],
        },
        actor=Actor.orket("test"),
    )


def ollama_profile(base_url: str) -> ModelProfile:
    return ModelProfile.objects.create(
        name="fake-ollama", provider="ollama", base_url=base_url, model="fake:1b", context_size=4096, timeout_seconds=5
    )


def answer(*calls: dict) -> object:
    text = "Here is what I will do.\n```json\n" + "\n".join(json.dumps(c) for c in calls) + "\n```"
    return ollama_stream([text[i : i + 40] for i in range(0, len(text), 40)])


def test_a_model_that_keeps_making_a_refused_call_ends_blocked_with_a_report(one_card_epic, fake_llm, tmp_path):
    escape = {"tool": "write_file", "args": {"path": "../outside.py", "content": "print('escaped')"}}
    fake_llm.queue(*[answer(escape) for _ in range(5)])
    run = services.run_start(epic=one_card_epic, profile=ollama_profile(fake_llm.base_url))
    run = drive(run.pk)
    card = Card.objects.get(epic=one_card_epic)
    assert run.status == "failed"
    assert (card.status, card.wait_reason) == ("blocked", "input")
    turn = Turn.objects.get(run=run)  # refused once with feedback, then blocked at the next step
    assert [step.outcome for step in turn.steps.order_by("number")] == ["calls", "blocked"]
    report = Comment.objects.filter(card=card).latest("id").body
    assert "write_file" in report and "What would fix it" in report
    assert not (tmp_path / "workspaces" / f"project-{card.project_id}" / "cards" / "outside.py").exists()
    assert not list(tmp_path.rglob("outside.py"))
    assert [call["decision"] for call in turn.tool_calls] == ["refused", "refused"]
    # The refusal was fed back to the agent in its next step's conversation.
    second = json.loads(fake_llm.requests[1].body)["messages"]
    assert second[-1]["role"] == "user" and "REFUSED by rule path_refused" in second[-1]["content"]


def test_the_same_call_three_times_in_a_row_blocks_the_card_for_input(one_card_epic, fake_llm):
    look = {"tool": "get_card_context", "args": {}}
    fake_llm.queue(answer(look, look, look))
    run = drive(services.run_start(epic=one_card_epic, profile=ollama_profile(fake_llm.base_url)).pk)
    card = Card.objects.get(epic=one_card_epic)
    assert (card.status, card.wait_reason) == ("blocked", "input")
    assert "three times" in run.status_reason or "blocked" in run.status_reason
    executed = [call["decision"] for call in Turn.objects.get(run=run).tool_calls]
    assert executed == ["executed", "executed", "refused"]


def test_garbage_answers_use_up_the_turn_budget_and_block_the_card(one_card_epic, fake_llm):
    fake_llm.queue(*[ollama_stream(["{not json at all", " \u0000 ", "}}}"]) for _ in range(5)])
    run = services.run_start(epic=one_card_epic, profile=ollama_profile(fake_llm.base_url))
    Run.objects.filter(pk=run.pk).update(turns_per_card=2)
    run = drive(run.pk)
    card = Card.objects.get(epic=one_card_epic)
    assert run.status == "failed"
    assert (card.status, card.wait_reason) == ("blocked", "input")
    no_calls = "The model made no tool calls, even after a reminder of the protocol."
    assert [t.outcome for t in Turn.objects.filter(run=run)] == [no_calls] * 2
    # Each turn reminded the model of the protocol once before giving up.
    second = json.loads(fake_llm.requests[1].body)["messages"]
    assert second[-1]["content"].startswith("ORKET-REMINDER:")
    # NUL cannot be stored by PostgreSQL: it is kept visible as U+FFFD in the steps and their events alike.
    step = Turn.objects.filter(run=run).first().steps.get(number=1)
    assert step.raw_answer == "{not json at all \ufffd }}}"
    streamed = "".join(e.data["text"] for e in run.events.filter(kind="text").order_by("seq"))
    assert streamed == "{not json at all \ufffd }}}" * 4


def _execute_queued(run_id: int) -> None:
    for turn_id in Turn.objects.filter(run_id=run_id, status="queued").values_list("pk", flat=True):
        services.turn_execute(turn_id=turn_id)


def test_an_unreachable_model_server_makes_the_card_wait_for_resource_and_resume_when_it_answers(one_card_epic):
    """An outage is not a failure: after the retries the card waits (blocked, resource, naming the URL),
    the run stays running through any number of advances, and once the server answers again the next
    advance (beat re-advances idle runs) resumes the card with a new turn, which succeeds."""
    url = closed_port_url()
    profile = ollama_profile(url)
    ModelProfile.objects.filter(pk=profile.pk).update(retry_attempts=2, retry_base_delay=0.01)
    run = services.run_start(epic=one_card_epic, profile=ModelProfile.objects.get(pk=profile.pk))
    services.run_advance(run_id=run.pk)
    _execute_queued(run.pk)
    card = Card.objects.get(epic=one_card_epic)
    assert (card.status, card.wait_reason) == ("blocked", "resource")
    assert url in Comment.objects.filter(card=card).latest("id").body
    assert run.events.filter(kind="model.retry").count() == 1
    for _ in range(3):
        services.run_advance(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "running"
    assert Turn.objects.filter(run=run, status__in=["queued", "running"]).count() == 0
    turn = Turn.objects.get(run=run)
    assert turn.failure == "model_unavailable" and turn.outcome.startswith(turns.MODEL_UNAVAILABLE)

    port = int(url.rsplit(":", 1)[1])
    look = answer({"tool": "add_comment", "args": {"body": "Back at work."}})

    def respond(request: RecordedRequest) -> Reply:
        return ollama_stream([]) if request.path == "/api/tags" else look

    with FakeLLMServer(port=port, responder=respond):
        services.run_advance(run_id=run.pk)
        card.refresh_from_db()
        assert (card.status, card.wait_reason) == ("in_progress", "")
        assert run.events.filter(kind="card.resumed", card_id=card.pk).count() == 1
        resumed = Turn.objects.get(run=run, number=2)
        assert resumed.status == "queued"
        services.turn_execute(turn_id=resumed.pk)
    resumed.refresh_from_db()
    assert resumed.status == "succeeded"
    assert Comment.objects.filter(card=card, body="Back at work.").exists()
    run.refresh_from_db()
    assert run.status == "running"


def test_a_model_server_that_refuses_the_request_still_ends_the_run(one_card_epic, fake_llm: FakeLLMServer):
    """A refusal (here 401) is not an outage: the card is blocked and the run fails, as before."""
    fake_llm.queue(json_error(401, "bad key"))
    run = drive(services.run_start(epic=one_card_epic, profile=ollama_profile(fake_llm.base_url)).pk)
    card = Card.objects.get(epic=one_card_epic)
    assert run.status == "failed"
    assert (card.status, card.wait_reason) == ("blocked", "resource")


def test_an_unknown_model_fails_at_once_with_an_actionable_message(one_card_epic, fake_llm: FakeLLMServer):
    fake_llm.queue(json_error(404, "model 'fake:1b' not found, try pulling it first"))
    run = drive(services.run_start(epic=one_card_epic, profile=ollama_profile(fake_llm.base_url)).pk)
    card = Card.objects.get(epic=one_card_epic)
    assert run.status == "failed"
    assert len(fake_llm.requests) == 1  # not retried
    assert (card.status, card.wait_reason) == ("blocked", "resource")
    body = Comment.objects.filter(card=card).latest("id").body
    assert "fake:1b" in body and fake_llm.base_url in body


def test_ollama_requests_carry_the_profile_settings(one_card_epic, fake_llm: FakeLLMServer):
    fake_llm.queue(
        answer({"tool": "add_comment", "args": {"body": "Looking at it."}}),
        answer({"tool": "finish_turn", "args": {"summary": "Commented."}}),
    )
    run = services.run_start(epic=one_card_epic, profile=ollama_profile(fake_llm.base_url))
    Run.objects.filter(pk=run.pk).update(turns_per_card=1)
    drive(run.pk)
    sent = fake_llm.requests[0].json()
    assert sent["model"] == "fake:1b" and sent["stream"] is True
    assert sent["options"]["num_ctx"] == 4096
    assert sent["messages"][0]["role"] == "system" and "senior_developer" in sent["messages"][0]["content"]
    assert Comment.objects.filter(card__epic=one_card_epic, author_seat="senior_developer").exists()


def test_a_slow_first_token_keeps_its_lease(one_card_epic, fake_llm, monkeypatch):
    """A local model may think for longer than a lease before it streams; the heartbeat thread keeps
    the turn's lease alive so the reaper never hands it to another worker."""
    monkeypatch.setattr(leases, "LEASE_SECONDS", 1.5)
    monkeypatch.setattr(leases, "HEARTBEAT_SECONDS", 0.3)
    slow = answer({"tool": "add_comment", "args": {"body": "Thought about it."}})
    slow.pauses = {0: 3.0}
    fake_llm.queue(slow, answer({"tool": "finish_turn", "args": {"summary": "Commented."}}))
    run = services.run_start(epic=one_card_epic, profile=ollama_profile(fake_llm.base_url))
    Run.objects.filter(pk=run.pk).update(turns_per_card=1)
    stop = threading.Event()

    def reap() -> None:
        try:
            while not stop.wait(0.2):
                services.turns_reap_stale()
        finally:
            connection.close()

    reaper = threading.Thread(target=reap)
    reaper.start()
    try:
        drive(run.pk)
    finally:
        stop.set()
        reaper.join()
    turn = Turn.objects.get(run=run)
    assert (turn.status, turn.attempts) == ("succeeded", 1)
    assert turn.time_to_first_token_ms >= 3000
    assert not run.events.filter(kind="turn.requeued").exists()
