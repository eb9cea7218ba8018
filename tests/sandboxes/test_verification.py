"""Verification: fixtures through the API, runs stored and applied to the card, the card's way to done."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, CardHistory, Project, ProjectRole
from boards.services import TransitionRefused
from sandboxes import verification
from sandboxes.fixtures import FixtureInvalid, parse_fixture
from sandboxes.models import Sandbox, VerificationFixture, VerificationRun
from sandboxes.runner.verify_runner import grade, same

GUARD = Actor.for_seat("integrity_guard", ["integrity_guard"], can_finalize=True)
CODER = Actor.for_seat("coder", ["coder"])

GOOD_CODE = "def verify_adds(pair):\n    return pair[0] + pair[1]\n\ndef verify(value):\n    return {'echo': value}\n"
FIXTURE = {
    "name": "arithmetic",
    "scenarios": [
        {"id": "adds", "description": "adds two numbers", "input": [1, 2], "expected": 3},
        {"id": "echo", "description": "echoes", "input": "x", "expected": {"echo": "x"}},
    ],
}


# -- pure parts: the fixture format and the grading ------------------------------------------------------


def test_fixture_validation_names_every_problem() -> None:
    with pytest.raises(FixtureInvalid) as invalid:
        parse_fixture(
            {
                "scenarios": [
                    {"id": "1bad", "input": 1, "expected": 1},
                    {"id": "ok", "input": 1},
                    {"id": "ok", "input": 1, "expected": 1},
                    {"id": "web", "endpoint": "http://evil.example/", "method": "BREW", "expected_status": 999},
                    {"id": "extra", "input": 1, "expected": 1, "surprise": True},
                ],
                "module": "../etc",
                "bogus": 1,
            }
        )
    paths = [path for path, _ in invalid.value.problems]
    assert "$.bogus" in paths and "$.module" in paths
    assert "$.scenarios[0].id" in paths
    assert "$.scenarios[1].expected" in paths
    assert "$.scenarios[2].id" in paths  # duplicate
    assert {"$.scenarios[3].endpoint", "$.scenarios[3].method", "$.scenarios[3].expected_status"} <= set(paths)
    assert "$.scenarios[4].surprise" in paths


def test_fixture_kinds_and_runner_spec_without_expected_values() -> None:
    fixture = parse_fixture(
        [
            {"id": "adds", "input": [1, 2], "expected": 3},
            {"id": "health", "endpoint": "/healthz", "expected_status": 200},
        ]
    )
    assert [s["id"] for s in fixture.scenarios] == ["adds"]
    assert [s["id"] for s in fixture.http_scenarios] == ["health"]
    assert fixture.http_scenarios[0]["method"] == "GET"
    assert "expected" not in json.dumps(fixture.runner_spec())


def test_grading_is_strict_about_json_types() -> None:
    assert same([1, 2.0000000001], [1, 2.0]) and same({"a": None}, {"a": None})
    assert not same(True, 1) and not same(1, True) and not same("1", 1) and not same({"a": 1}, {"a": 1, "b": 2})
    assert grade({"id": "x", "status": "ok", "output": 3}, 3)["status"] == "passed"
    assert grade({"id": "x", "status": "ok", "output": 4}, 3)["status"] == "failed"
    assert grade({"id": "x", "status": "error", "error": "boom"}, 3)["status"] == "error"


# -- the database side -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def local_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    monkeypatch.setenv("ORKET_VERIFICATION_TIMEOUT", "20")


@pytest.fixture
def maintainer(project: Project, member_of: Callable[..., Any]) -> Any:
    return member_of(project, ProjectRole.MAINTAINER)


@pytest.fixture
def card(project: Project, maintainer: Any) -> Card:
    epic = board_services.epic_create(project=project, actor=Actor.for_user(maintainer), name="Maths")
    return board_services.card_create(epic=epic, actor=Actor.for_user(maintainer), title="Add numbers")


def write_workspace(card: Card, files: dict[str, str]) -> Path:
    """A fresh worktree for the card holding only `files` (ids repeat between tests; the data folder stays)."""
    root = verification.workspaces_root() / f"project-{card.project_id}" / "cards" / str(card.pk)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def upload(api: Any, card: Card, document: Any) -> Any:
    return api.post(
        f"/api/cards/{card.pk}/verification-fixtures/", data=json.dumps(document), content_type="application/json"
    )


def to_review(card: Card) -> None:
    board_services.card_transition(card=card, to_status="in_progress", actor=CODER)
    board_services.card_transition(card=card, to_status="code_review", actor=CODER)


def test_upload_stores_outside_workspaces_with_its_hash(
    card: Card, maintainer: Any, api_as: Callable[[Any], Any]
) -> None:
    api = api_as(maintainer)
    body = json.dumps(FIXTURE).encode()
    answer = api.post(f"/api/cards/{card.pk}/verification-fixtures/", data=body, content_type="application/json")
    assert answer.status_code == 201, answer.json()
    sha = hashlib.sha256(body).hexdigest()
    assert answer.json()["sha256"] == sha and answer.json()["scenario_count"] == 2
    row = VerificationFixture.objects.get()
    path = Path(row.storage_path)
    assert path == Path(settings.DATA_DIR) / "fixtures" / str(card.project_id) / f"{sha}.json"
    assert path.read_bytes() == body
    assert not path.resolve().is_relative_to(verification.workspaces_root().resolve())
    assert Card.objects.get(pk=card.pk).verification_fixture == f"sha256:{sha}"

    second = api.post(
        f"/api/cards/{card.pk}/verification-fixtures/",
        data={"file": SimpleUploadedFile("numbers.json", json.dumps(FIXTURE["scenarios"]).encode())},
        format="multipart",
    )
    assert second.status_code == 201, second.json()
    assert second.json()["name"] == "numbers.json"
    listed = api.get(f"/api/cards/{card.pk}/verification-fixtures/").json()
    assert [item["id"] for item in listed] == [second.json()["id"], answer.json()["id"]]


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("{not json", "fixture_invalid"),
        ({"scenarios": []}, "fixture_invalid"),
        ({"scenarios": [{"id": "not an id", "input": 1, "expected": 1}]}, "fixture_invalid"),
        ({"scenarios": [{"id": "x", "endpoint": "https://example.com/", "expected_status": 200}]}, "fixture_invalid"),
    ],
)
def test_bad_fixtures_are_refused_and_change_nothing(
    card: Card, maintainer: Any, api_as: Callable[[Any], Any], document: Any, code: str
) -> None:
    api = api_as(maintainer)
    body = document if isinstance(document, str) else json.dumps(document)
    answer = api.post(f"/api/cards/{card.pk}/verification-fixtures/", data=body, content_type="application/json")
    assert answer.status_code == 400, answer.json()
    assert answer.json()["code"] == code and answer.json()["detail"]
    assert VerificationFixture.objects.count() == 0
    assert Card.objects.get(pk=card.pk).verification_fixture == ""
    sha = hashlib.sha256(body.encode()).hexdigest()
    assert not (Path(settings.DATA_DIR) / "fixtures" / str(card.project_id) / f"{sha}.json").exists()


def test_size_cap(card: Card, maintainer: Any, api_as: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORKET_FIXTURE_MAX_BYTES", "200")
    api = api_as(maintainer)
    big = {"scenarios": [{"id": f"s{i}", "input": i, "expected": i} for i in range(20)]}
    answer = upload(api, card, big)
    assert answer.status_code == 413 and answer.json()["code"] == "fixture_too_large"
    as_file = api.post(
        f"/api/cards/{card.pk}/verification-fixtures/",
        data={"file": SimpleUploadedFile("big.json", json.dumps(big).encode())},
        format="multipart",
    )
    assert as_file.status_code == 413
    assert VerificationFixture.objects.count() == 0


def test_membership(
    card: Card, project: Project, member_of: Callable[..., Any], make_user: Callable[..., Any], api: Any
) -> None:
    viewer = member_of(project, ProjectRole.VIEWER)
    stranger = make_user("stranger")
    api.force_authenticate(stranger)
    assert upload(api, card, FIXTURE).status_code == 404
    assert api.get(f"/api/cards/{card.pk}/verifications/").status_code == 404
    api.force_authenticate(viewer)
    assert upload(api, card, FIXTURE).status_code == 403
    assert api.post(f"/api/cards/{card.pk}/verifications/", data={}, format="json").status_code == 403
    assert api.get(f"/api/cards/{card.pk}/verification-fixtures/").status_code == 200
    assert api.get(f"/api/cards/{card.pk}/verifications/").status_code == 200
    api.force_authenticate(None)
    assert api.get(f"/api/cards/{card.pk}/verifications/").status_code in (401, 403)
    assert VerificationFixture.objects.count() == 0


@pytest.mark.slow
def test_passing_fixture_lets_the_guard_finish_the_card(
    card: Card, maintainer: Any, api_as: Callable[[Any], Any], django_capture_on_commit_callbacks: Any
) -> None:
    api = api_as(maintainer)
    assert upload(api, card, FIXTURE).status_code == 201
    write_workspace(card, {"verify.py": GOOD_CODE})
    to_review(card)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        started = api.post(f"/api/cards/{card.pk}/verifications/", data={}, format="json")
    assert started.status_code == 202, started.json()
    assert started.json()["status"] == "queued" and callbacks  # the task is sent after commit
    run = verification.verification_run(run_id=started.json()["id"])
    assert run.status == "passed" and (run.passed, run.failed, run.errors) == (2, 0, 0)
    assert run.backend == "local" and run.isolation
    assert Card.objects.get(pk=card.pk).last_verification == "passed"
    board_services.card_transition(card=card, to_status="done", actor=GUARD)
    assert Card.objects.get(pk=card.pk).status == "done"

    detail = api.get(f"/api/verifications/{run.pk}/").json()
    assert detail["status"] == "passed" and detail["results"][0]["id"] == "adds"
    assert detail["results"][0]["expected"] == 3 and detail["results"][0]["output"] == 3
    assert api.get(f"/api/cards/{card.pk}/verifications/").json()[0]["id"] == run.pk


@pytest.mark.slow
def test_failing_fixture_is_refused_with_verification_failed(
    card: Card, maintainer: Any, api_as: Callable[[Any], Any]
) -> None:
    api = api_as(maintainer)
    upload(api, card, FIXTURE)
    write_workspace(card, {"solution.py": "def verify_adds(pair):\n    return pair[0] - pair[1]\n"})
    to_review(card)
    run = verification.verification_run(run_id=verification.verification_start(card=card, requested_by="t").pk)
    assert run.status == "failed"
    statuses = {r["id"]: r["status"] for r in run.results}
    assert statuses == {"adds": "failed", "echo": "error"}  # no verify() for echo
    assert Card.objects.get(pk=card.pk).last_verification == "failed"
    with pytest.raises(TransitionRefused) as refused:
        board_services.card_transition(card=card, to_status="done", actor=GUARD)
    assert refused.value.code == "verification_failed"
    history = CardHistory.objects.filter(card=card, actor_seat="verification").last()
    assert history is not None and f"Verification {run.pk}" in history.reason

    # The agents fix the code; the next run passes, and the card may be finished.
    write_workspace(card, {"solution.py": GOOD_CODE})
    again = verification.verification_run(run_id=verification.verification_start(card=card, requested_by="t").pk)
    assert again.status == "passed"
    board_services.card_transition(card=card, to_status="done", actor=GUARD)
    listed = api.get(f"/api/cards/{card.pk}/verifications/").json()
    assert [item["id"] for item in listed] == [again.pk, run.pk]


@pytest.mark.slow
def test_the_agent_tool_runs_it_and_does_not_see_expected_values(card: Card, maintainer: Any) -> None:
    from agents.steps import _verification

    assert _verification(card)["status"] == "not_configured"
    verification.fixture_upload(card=card, raw=json.dumps(FIXTURE).encode(), name="f", user=maintainer)
    write_workspace(card, {"verify.py": "def verify(value):\n    return 'wrong'\n"})
    summary = _verification(Card.objects.get(pk=card.pk))
    assert summary["status"] == "failed" and summary["failed"] == 2
    assert "expected" not in json.dumps(summary["scenarios"])
    assert summary["isolation"] and VerificationRun.objects.get().requested_by == "agent"


def test_no_fixture_is_a_clear_400(card: Card, maintainer: Any, api_as: Callable[[Any], Any]) -> None:
    answer = api_as(maintainer).post(f"/api/cards/{card.pk}/verifications/", data={}, format="json")
    assert answer.status_code == 400 and answer.json()["code"] == "no_fixture"
    assert VerificationRun.objects.count() == 0


@pytest.mark.slow
def test_pytest_kind_says_when_pytest_is_missing(card: Card, maintainer: Any) -> None:
    write_workspace(card, {"test_x.py": "def test_x():\n    assert True\n"})
    run = verification.verification_start(card=card, requested_by="t", kind="pytest", user=maintainer)
    run = verification.verification_run(run_id=run.pk)
    assert Card.objects.get(pk=card.pk).last_verification == ""  # informational only
    if run.status == "error":
        assert "pytest is not installed" in run.output
    else:
        assert run.status == "passed" and run.results[0]["status"] == "passed"


class _App(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"ok": True, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        data = json.loads(self.rfile.read(length) or b"null")
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"created": data, "id": 7}).encode())

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def app_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_scenarios_run_against_the_running_sandbox(card: Card, maintainer: Any, app_url: str) -> None:
    fixture = {
        "scenarios": [
            {"id": "health", "endpoint": "/healthz", "expected_status": 200, "expected_output": {"ok": True}},
            {
                "id": "create",
                "endpoint": "/items",
                "method": "post",
                "payload": {"name": "a"},
                "expected_status": 201,
                "expected_output": {"created": {"name": "a"}},
            },
            {"id": "wrong", "endpoint": "/x", "expected_status": 404},
        ]
    }
    verification.fixture_upload(card=card, raw=json.dumps(fixture).encode(), name="http", user=maintainer)
    run = verification.verification_start(card=card, requested_by="t")
    assert run.kind == "http"
    no_sandbox = verification.verification_run(run_id=run.pk)
    assert no_sandbox.status == "error" and "no running sandbox" in no_sandbox.results[0]["error"]
    assert Card.objects.get(pk=card.pk).last_verification == "failed"  # not a pass: still keeps it out of done

    Sandbox.objects.create(
        project=card.project, card=card, name="s1", workspace_path="/nowhere", backend="local", status="running",
        urls={"web": app_url},
    )  # fmt: skip
    run = verification.verification_run(run_id=verification.verification_start(card=card, requested_by="t").pk)
    statuses = {r["id"]: r["status"] for r in run.results}
    assert statuses == {"health": "passed", "create": "passed", "wrong": "failed"}
    assert "404" in run.results[2]["error"]
    assert run.status == "failed"


def test_runs_that_lost_their_worker_are_recovered(
    card: Card, maintainer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    verification.fixture_upload(card=card, raw=json.dumps(FIXTURE).encode(), name="f", user=maintainer)
    lost = verification.verification_start(card=card, requested_by="t")
    waiting = verification.verification_start(card=card, requested_by="t")
    long_ago = timezone.now() - timedelta(hours=1)
    VerificationRun.objects.filter(pk=lost.pk).update(status="running", started_at=long_ago)
    VerificationRun.objects.filter(pk=waiting.pk).update(created_at=long_ago)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert verification.verification_runs_recover() == 2
    assert len(callbacks) == 1  # the queued one is sent again
    lost.refresh_from_db()
    assert lost.status == "error" and "stopped before it finished" in lost.output
    assert VerificationRun.objects.get(pk=waiting.pk).status == "queued"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_api_request_is_run_by_a_celery_worker(card: Card, maintainer: Any, api_as: Callable[[Any], Any]) -> None:
    import time

    from tests.agents.engine_support import worker_thread

    api = api_as(maintainer)
    assert upload(api, card, FIXTURE).status_code == 201
    write_workspace(card, {"verify.py": GOOD_CODE})
    with worker_thread():
        started = api.post(f"/api/cards/{card.pk}/verifications/", data={"kind": "fixture"}, format="json")
        assert started.status_code == 202
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = api.get(f"/api/verifications/{started.json()['id']}/").json()
            if run["status"] not in ("queued", "running"):
                break
            time.sleep(0.1)
    assert run["status"] == "passed", run
    assert run["passed"] == 2 and run["isolation"] and run["fixture_sha256"]
    assert Card.objects.get(pk=card.pk).last_verification == "passed"


def test_entering_code_review_starts_a_verification(
    card: Card, maintainer: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    board_services.card_transition(card=card, to_status="in_progress", actor=CODER)
    with django_capture_on_commit_callbacks(execute=True):
        board_services.card_transition(card=card, to_status="code_review", actor=CODER)
    assert VerificationRun.objects.count() == 0  # no fixture: nothing to run, and the move is not disturbed

    verification.fixture_upload(card=card, raw=json.dumps(FIXTURE).encode(), name="f", user=maintainer)
    board_services.card_transition(card=card, to_status="in_progress", actor=CODER)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        board_services.card_transition(card=card, to_status="code_review", actor=CODER)
    for callback in callbacks:
        callback()  # the board event, then the signal: a run is queued (and sent to the worker)
    run = VerificationRun.objects.get()
    assert run.status == "queued" and run.requested_by == "orket: entered code review"

    monkeypatch.setenv("ORKET_VERIFY_ON_REVIEW", "0")
    board_services.card_transition(card=card, to_status="in_progress", actor=CODER)
    with django_capture_on_commit_callbacks(execute=True):
        board_services.card_transition(card=card, to_status="code_review", actor=CODER)
    assert VerificationRun.objects.count() == 1
