"""A worker process is killed with SIGKILL between step 2 and step 3 of a five-step turn: the next
attempt resumes at step 3. The model is asked exactly once for steps 1 and 2, and the side effects
of their calls (a comment, a seat note) happen exactly once.

The model is the Ollama-speaking fake of tests/agents/fake_llm.py, answering by the step it is in
(counted from the observations in the conversation it receives). When it is asked for step 3 the
first time, it holds the request open and the test kills the worker that sent it."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest

from benchmarks.cluster import Cluster
from tests.agents.fake_llm import FakeLLMServer, RecordedRequest, Reply, json_error
from tests.faults.conftest import Api, assert_runs_whole, assert_tokens_counted_once, wait_for_runs
from tests.faults.test_model_outage import create_profile, wait_until
from tests.faults.test_postgres_mid_turn import calls_answer
from tests.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.services]


class FiveStepModel:
    """The coder's turn takes five steps; the reviewer finishes in one."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.asked: Counter[tuple[str, int]] = Counter()
        self.holding = threading.Event()  # a step-3 request is being held open
        self.release = threading.Event()
        self._lock = threading.Lock()

    def comment(self, step: int) -> str:
        return f"{self.marker}: the comment of step {step}"

    def note(self) -> str:
        return f"{self.marker}: the note of step 2"

    def __call__(self, request: RecordedRequest) -> Reply:
        if request.path == "/api/tags":
            return Reply(chunks=[b'{"models": [{"name": "fake:7b"}]}'], chunked=False)
        if request.path != "/api/chat":
            return json_error(404, f"no {request.path}")
        messages = request.json()["messages"]
        role = "reviewer" if "ORKET-PURPOSE: review" in messages[0]["content"] else "coder"
        step = 1 + sum(m["role"] == "user" and str(m["content"]).startswith("ORKET-OBSERVATION:") for m in messages[2:])
        with self._lock:
            self.asked[(role, step)] += 1
            first_step_three = role == "coder" and step == 3 and self.asked[(role, step)] == 1
        if first_step_three:
            self.holding.set()
            self.release.wait(60)  # the worker that asked is killed meanwhile
            return json_error(500, "the asking worker is gone")
        if role == "reviewer":
            return calls_answer({"tool": "update_card_status", "args": {"status": "done", "reason": "Reviewed."}})
        answers = {
            1: {"tool": "add_comment", "args": {"body": self.comment(1)}},
            2: {"tool": "add_note", "args": {"body": self.note(), "to_seat": "all"}},
            3: {"tool": "add_comment", "args": {"body": self.comment(3)}},
            4: {"tool": "write_file", "args": {"path": "notes/step4.txt", "content": "written at step 4\n"}},
            5: {"tool": "update_card_status", "args": {"status": "code_review", "reason": "Five steps done."}},
        }
        return calls_answer(answers.get(step, answers[5]))


def one_card_epic(api: Api) -> int:
    slug = f"steps-{uuid.uuid4().hex[:6]}"
    project = api.post("/api/projects/", {"name": "Killed between steps", "slug": slug})
    answer = api.client.patch(
        f"/api/projects/{project['id']}/settings/",
        json={"require_verification": False},
        headers={"X-CSRFToken": api.client.cookies["csrftoken"]},
    )
    assert answer.status_code == 200, answer.text
    epic = {"name": "Steps", "team": "standard", "cards": [{"summary": "Five steps", "seat": "senior_developer"}]}
    return int(api.post(f"/api/projects/{project['id']}/import/", epic)["id"])


@pytest.mark.timeout(300)
def test_a_worker_killed_between_steps_resumes_at_the_next_step(cluster: Cluster, api: Api) -> None:
    port = free_port()
    profile = f"fake-steps-{uuid.uuid4().hex[:6]}"
    create_profile(cluster, profile, port)
    model = FiveStepModel(marker=uuid.uuid4().hex[:8])
    server = FakeLLMServer(port=port, responder=model).start()
    try:
        run_id = api.start_run(one_card_epic(api), profile)
        wait_until(model.holding.is_set, 90, "the model is asked for step 3")
        turn_id, owner = cluster.query(
            "SELECT id, lease_owner FROM agents_turn WHERE run_id = %s AND number = 1", run_id
        )[0]
        pid = int(owner.split(":")[1])
        victim = next(worker for worker in cluster.workers if worker.pid == pid)
        cluster.kill_worker(victim)
        cluster.start_worker(wait=True)  # its supervisor would start a new one
        model.release.set()
        finished = wait_for_runs(cluster, [run_id], 180)
    finally:
        model.release.set()
        server.stop()

    assert finished[run_id][0] == "succeeded", (finished, cluster.logs())
    assert model.asked[("coder", 1)] == 1 and model.asked[("coder", 2)] == 1, model.asked
    assert model.asked[("coder", 3)] == 2, model.asked  # the killed request, then the resumed one
    assert model.asked[("coder", 4)] == model.asked[("coder", 5)] == 1, model.asked
    assert cluster.query("SELECT count(*) FROM boards_comment WHERE body = %s", model.comment(1)) == [(1,)]
    assert cluster.query("SELECT count(*) FROM agents_seatnote WHERE body = %s", model.note()) == [(1,)]
    assert cluster.query("SELECT count(*) FROM boards_comment WHERE body = %s", model.comment(3)) == [(1,)]
    attempts, status = cluster.query("SELECT attempts, status FROM agents_turn WHERE id = %s", turn_id)[0]
    assert (attempts, status) == (2, "succeeded")
    steps = cluster.query("SELECT number, outcome FROM agents_turnstep WHERE turn_id = %s ORDER BY number", turn_id)
    assert steps == [(1, "calls"), (2, "calls"), (3, "calls"), (4, "calls"), (5, "handoff")]
    resumed = cluster.query(
        "SELECT data FROM agents_runevent WHERE run_id = %s AND turn_id = %s AND kind = 'turn.resumed'",
        run_id,
        turn_id,
    )
    assert [row[0]["steps_done"] for row in resumed] == [2]
    assert_tokens_counted_once(cluster, run_id)
    assert_runs_whole(cluster, [run_id])
