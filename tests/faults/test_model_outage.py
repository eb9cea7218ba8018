"""The model server goes away and comes back: cards wait with wait_reason resource and resume, and
nothing that could proceed is marked failed.

The model server is the Ollama-speaking fake of tests/agents/fake_llm.py on a fixed port, answering
every prompt as the scripted team would (agents.scripted_team). It is stopped mid-run for
OUTAGE_SECONDS (a minute: the engine gives up retrying after a few seconds, and the rest of the
outage is spent waiting with the cards blocked for resource), then started again on the same port."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest

from agents.providers.base import ChatRequest
from agents.providers.scripted import split_words
from agents.scripted_team import scripted_reply
from benchmarks.cluster import Cluster
from tests.agents.fake_llm import FakeLLMServer, RecordedRequest, Reply, json_error, ollama_stream
from tests.faults.conftest import Api, assert_runs_whole, event_kinds, wait_for_runs
from tests.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.services]

OUTAGE_SECONDS = 60.0
MODEL_UNAVAILABLE = "The model server is unavailable"


def answer_as_the_scripted_team(request: RecordedRequest) -> Reply:
    if request.path == "/api/tags":
        return Reply(chunks=[json.dumps({"models": [{"name": "fake:7b"}]}).encode()], chunked=False)
    if request.path != "/api/chat":
        return json_error(404, f"no {request.path}")
    body = request.json()
    text = scripted_reply(ChatRequest(messages=body["messages"], model=body["model"])).text
    pieces = split_words(text, 4)
    reply = ollama_stream(pieces, model=body["model"])
    reply.pauses = {index: 0.02 for index in range(len(pieces))}  # a turn streams for a second or two
    return reply


def create_profile(cluster: Cluster, name: str, port: int) -> None:
    code = (
        "from agents.models import ModelProfile; ModelProfile.objects.create("
        f"name={name!r}, provider='ollama', base_url='http://127.0.0.1:{port}', model='fake:7b', "
        "timeout_seconds=10, retry_attempts=3, retry_base_delay=0.5)"
    )
    result = cluster.manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.25)


@pytest.mark.timeout(400)
def test_cards_wait_for_the_model_server_and_resume_when_it_comes_back(cluster: Cluster, api: Api) -> None:
    port = free_port()
    profile = f"fake-ollama-{uuid.uuid4().hex[:6]}"
    create_profile(cluster, profile, port)
    server = FakeLLMServer(port=port, responder=answer_as_the_scripted_team).start()
    try:
        run_ids = [api.start_run(api.demo_epic(f"outage-{index}"), profile) for index in range(2)]

        def turns_succeeded() -> int:
            return cluster.query(
                "SELECT count(*) FROM agents_turn WHERE run_id = ANY(%s) AND status='succeeded'", run_ids
            )[0][0]

        wait_until(lambda: turns_succeeded() >= 1, 90, "a turn succeeded before the outage")
    finally:
        server.stop()
    went_down = time.monotonic()

    def waiting_cards() -> list[tuple[int, str, str]]:
        return cluster.query(
            "SELECT c.id, c.status, c.wait_reason FROM boards_card c JOIN agents_run r ON r.epic_id = c.epic_id "
            "WHERE r.id = ANY(%s) AND c.status = 'blocked'",
            run_ids,
        )

    wait_until(lambda: len(waiting_cards()) >= 1, 30, "a card waits for the model server")
    # The outage lasts OUTAGE_SECONDS; no run may end at any point of it, checked all along.
    while True:
        statuses = cluster.query("SELECT status FROM agents_run WHERE id = ANY(%s)", run_ids)
        assert statuses == [("running",)] * len(run_ids), "a run was ended by the outage"
        if time.monotonic() - went_down >= OUTAGE_SECONDS:
            break
        time.sleep(0.5)
    during = waiting_cards()
    assert during and all(reason == "resource" for _, _, reason in during), during

    server = FakeLLMServer(port=port, responder=answer_as_the_scripted_team).start()
    try:
        finished = wait_for_runs(cluster, run_ids, 240)
    finally:
        server.stop()
    assert {status for status, _ in finished.values()} == {"succeeded"}, finished
    assert_runs_whole(cluster, run_ids)
    cards = cluster.query(
        "SELECT c.status, count(*) FROM boards_card c JOIN agents_run r ON r.epic_id = c.epic_id "
        "WHERE r.id = ANY(%s) GROUP BY c.status",
        run_ids,
    )
    assert cards == [("done", 4 * len(run_ids))]
    # The only failed turns are the ones the outage cut off, and each of their cards resumed.
    failed = cluster.query(
        "SELECT card_id, failure, outcome FROM agents_turn WHERE run_id = ANY(%s) AND status='failed'", run_ids
    )
    assert failed, "the outage cut no turn off"
    assert all(failure == "model_unavailable" for _, failure, _ in failed), failed
    assert all(outcome.startswith(MODEL_UNAVAILABLE) for _, _, outcome in failed), failed
    resumed = {
        card
        for run_id in run_ids
        for (card,) in cluster.query(
            "SELECT card_id FROM agents_runevent WHERE run_id=%s AND kind='card.resumed'", run_id
        )
    }
    assert {card for card, _, _ in failed} <= resumed
    assert all("card.resumed" in event_kinds(cluster, run_id) for run_id in run_ids)
