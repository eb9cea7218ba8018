"""PostgreSQL goes down in the middle of a step's tool calls: when the turn is re-run, the calls that
had already taken effect are not made again, and the model is not asked again for that step.

The model is the Ollama-speaking fake of tests/agents/fake_llm.py. Its first answer makes two
calls: add_comment, then add_note. A separate session holds a SHARE lock on the seat notes table, so
the worker's add_note waits on the lock after add_comment has committed; PostgreSQL is stopped at
that moment, which cuts the worker off between the two calls, and started again after a few seconds.
The reaper re-queues the turn once its lease runs out, and the next attempt resumes from what the
first one stored."""

from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg
import pytest

from benchmarks.cluster import Cluster
from tests.agents.fake_llm import FakeLLMServer, RecordedRequest, Reply, json_error, ollama_stream
from tests.faults.conftest import Api, assert_runs_whole, assert_tokens_counted_once, wait_for_runs
from tests.faults.test_model_outage import create_profile, wait_until
from tests.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.services]

DOWNTIME_SECONDS = 6.0
COMMENT = "journal check: the comment of the first call"
NOTE = "journal check: the note of the second call"


def calls_answer(*calls: dict[str, object]) -> Reply:
    text = "I will do this.\n```json\n" + "\n".join(json.dumps(call) for call in calls) + "\n```"
    return ollama_stream([text[i : i + 40] for i in range(0, len(text), 40)], model="fake:7b")


class CountingModel:
    """Answers the first step with the two calls; any later step asks to stop for input."""

    def __init__(self) -> None:
        self.chats = 0
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Reply:
        if request.path == "/api/tags":
            return Reply(chunks=[json.dumps({"models": [{"name": "fake:7b"}]}).encode()], chunked=False)
        if request.path != "/api/chat":
            return json_error(404, f"no {request.path}")
        with self._lock:
            self.chats += 1
            first = self.chats == 1
        if first:
            return calls_answer(
                {"tool": "add_comment", "args": {"body": COMMENT}},
                {"tool": "add_note", "args": {"body": NOTE, "to_seat": "all"}},
            )
        stop = {"status": "blocked", "wait_reason": "input", "reason": "The test is over."}
        return calls_answer({"tool": "update_card_status", "args": stop})


def one_card_epic(api: Api) -> int:
    slug = f"journal-{uuid.uuid4().hex[:6]}"
    project = api.post("/api/projects/", {"name": "Faults journal", "slug": slug})
    epic = {"name": "Journal", "team": "standard", "cards": [{"summary": "Leave a note", "seat": "senior_developer"}]}
    return int(api.post(f"/api/projects/{project['id']}/import/", epic)["id"])


def waiting_note_insert(cluster: Cluster) -> bool:
    return bool(
        cluster.query(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            'INSERT INTO "agents_seatnote"%',
        )
    )


@pytest.mark.timeout(300)
def test_a_turn_cut_off_by_postgresql_does_not_repeat_its_calls(cluster: Cluster, api: Api) -> None:
    assert cluster.postgres is not None
    port = free_port()
    profile = f"fake-journal-{uuid.uuid4().hex[:6]}"
    create_profile(cluster, profile, port)
    model = CountingModel()
    server = FakeLLMServer(port=port, responder=model).start()
    locker = psycopg.connect(cluster.database_url, connect_timeout=5)
    try:
        locker.execute("LOCK TABLE agents_seatnote IN SHARE MODE")
        run_id = api.start_run(one_card_epic(api), profile)
        wait_until(lambda: waiting_note_insert(cluster), 60, "the worker's add_note waits on the lock")
        assert cluster.query("SELECT count(*) FROM boards_comment WHERE body = %s", COMMENT) == [(1,)]
        cluster.postgres.stop()
        time.sleep(DOWNTIME_SECONDS)
        cluster.postgres.start()

        def turn_finished() -> bool:
            rows = cluster.query("SELECT status FROM agents_turn WHERE run_id = %s AND number = 1", run_id)
            return bool(rows) and rows[0][0] not in ("queued", "running")

        wait_until(turn_finished, 90, "the cut-off turn finished")
        turn_id, status, attempts, tool_calls = cluster.query(
            "SELECT id, status, attempts, tool_calls FROM agents_turn WHERE run_id = %s AND number = 1", run_id
        )[0]
        assert status == "succeeded" and attempts == 2, (status, attempts, cluster.logs())
        assert [(call["name"], call["decision"], call["step"]) for call in tool_calls] == [
            ("add_comment", "executed", 1),
            ("add_note", "executed", 1),
            ("update_card_status", "executed", 2),
        ]
        assert cluster.query("SELECT count(*) FROM boards_comment WHERE body = %s", COMMENT) == [(1,)]
        assert cluster.query("SELECT count(*) FROM agents_seatnote WHERE body = %s", NOTE) == [(1,)]
        resumed = cluster.query(
            "SELECT data FROM agents_runevent WHERE run_id = %s AND turn_id = %s AND kind = 'turn.resumed'",
            run_id,
            turn_id,
        )
        assert [row[0]["steps_done"] for row in resumed] == [0]  # step 1 was cut off inside its calls
        finished = wait_for_runs(cluster, [run_id], 120)
    finally:
        locker.close()
        server.stop()
    # The first step's answer was stored, so the second attempt did not ask the model again for it:
    # the one later chat is step 2.
    assert model.chats == 2, model.chats
    assert finished[run_id][0] == "failed" and "blocked" in finished[run_id][1].lower(), finished
    assert_tokens_counted_once(cluster, run_id)
    assert_runs_whole(cluster, [run_id])
