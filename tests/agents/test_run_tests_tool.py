"""run_tests in real turns: the agent sees the failure, fixes it, runs the tests again, and only a passing run of
the card's latest commit lets the integrity guard finish the card (recorded as a `card_tests` verification).

The scripted team plays the coder and the guard (label `run-tests`); a fake model served over HTTP plays them in a
second test and can fix the bug only with what the observation of run_tests showed it. Commands run on
bubblewrap (Docker has its own hostile tests in tests/sandboxes/test_agent_commands.py).
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from agents import services
from agents.models import ModelProfile, RunEvent, Turn
from agents.scripted_team import _FIXED_BODY, _UNFIXED_BODY, module_path, module_test_path
from agents.services import seed_standard_configuration
from agents.workspaces import ProjectWorkspace, git_env, project_workspace_root
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, CardHistory, Epic, Project
from boards.services import TransitionRefused, epic_import
from sandboxes.commands import card_tests_run
from sandboxes.models import LogStream, SandboxSettings, VerificationRun
from tests.agents.engine_support import drive
from tests.agents.fake_llm import FakeLLMServer
from tests.agents.tests_model import TestsFixingModel
from tests.sandboxes.verification_support import require_bwrap

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def bubblewrap(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_bwrap()
    settings.DATA_DIR = tmp_path
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    monkeypatch.delenv("ORKET_BWRAP", raising=False)
    monkeypatch.setenv("ORKET_COMMAND_TIMEOUT_SECONDS", "60")
    seed_standard_configuration()


def make_epic(labels: list[str]) -> tuple[Epic, Card, ProjectWorkspace]:
    project = Project.objects.create(name="Tests", slug="tests", require_verification=True)
    epic = epic_import(
        project=project,
        data={
            "name": "Fix the tests",
            "team": "standard",
            "cards": [{"summary": "Make the tests pass", "seat": "senior_developer", "labels": labels}],
        },
        actor=Actor.orket("test"),
    )
    workspace = ProjectWorkspace(project_workspace_root(settings.DATA_DIR, project.pk))
    workspace.ensure()
    return epic, Card.objects.get(epic=epic), workspace


def commit_on_main(workspace: ProjectWorkspace, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = workspace.repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for args in (["add", "-A"], ["commit", "--quiet", "-m", "Seed the code and its tests"]):
        subprocess.run(["git", *args], cwd=workspace.repo, env=git_env(), check=True, capture_output=True)


def git_show(workspace: ProjectWorkspace, ref: str, path: str) -> str:
    done = subprocess.run(
        ["git", "show", f"{ref}:{path}"], cwd=workspace.repo, env=git_env(), capture_output=True, check=True
    )
    return done.stdout.decode()


def card_tests_runs(card: Card) -> list[VerificationRun]:
    return list(VerificationRun.objects.filter(card=card, kind="card_tests").order_by("id"))


def calls_of(turn: Turn) -> list[tuple[str, str]]:
    return [(call["name"], call.get("decision", "")) for call in turn.tool_calls]


def test_scripted_coder_sees_the_failure_fixes_it_and_the_guard_accepts_the_passing_run() -> None:
    epic, card, workspace = make_epic(["run-tests"])
    module = (
        f'"""Card {card.pk}."""\n\nfrom __future__ import annotations\n\nTITLE = "Make the tests pass"\n\n\n'
        + _UNFIXED_BODY
    )
    test = (
        "import pytest\n\n"
        f"from services.card_{card.pk} import TITLE, describe\n\n\n"
        "def test_describe_names_the_card() -> None:\n"
        '    assert describe("widget") == f"{TITLE}: widget"\n\n\n'
        "def test_describe_refuses_empty_names() -> None:\n"
        "    with pytest.raises(ValueError):\n"
        '        describe("  ")\n'
    )
    commit_on_main(workspace, {module_path(str(card.pk)): module, module_test_path(str(card.pk)): test})

    run = drive(services.run_start(epic=epic).pk)

    assert run.status == "succeeded", run.status_reason
    card.refresh_from_db()
    assert card.status == "done" and card.last_verification == "passed"
    coder, guard = Turn.objects.filter(run=run).order_by("id")
    assert calls_of(coder) == [
        ("get_card_context", "executed"),
        ("run_tests", "executed"),
        ("read_file", "executed"),
        ("edit_file", "executed"),
        ("run_tests", "executed"),
        ("add_comment", "executed"),
        ("update_card_status", "executed"),
    ]
    first, second = (call["result"] for call in coder.tool_calls if call["name"] == "run_tests")
    assert (first["status"], first["passed"], first["failed"]) == ("failed", 1, 1)
    assert "test_describe_refuses_empty_names" in first["content"]
    assert (second["status"], second["passed"], second["failed"]) == ("passed", 2, 0)
    assert second["verification"]["counts_for_gate"] is True
    assert calls_of(guard) == [("run_tests", "executed"), ("update_card_status", "executed")]
    assert _FIXED_BODY in git_show(workspace, f"card/{card.pk}", module_path(str(card.pk)))
    runs = card_tests_runs(card)
    assert [(r.status, r.passed, r.failed) for r in runs] == [("failed", 1, 1), ("passed", 2, 0), ("passed", 2, 0)]
    assert runs[0].commit_sha != runs[1].commit_sha == runs[2].commit_sha
    assert runs[1].backend == "local" and runs[1].isolation.startswith("bubblewrap")
    # The failing run was recorded on the card, the edit's commit cleared it, and the passing run set it.
    changes = [
        h.changes["last_verification"]
        for h in CardHistory.objects.filter(card=card).order_by("id")
        if "last_verification" in h.changes
    ]
    assert changes[:3] == [["", "failed"], ["failed", ""], ["", "passed"]]
    # Each run_tests call's output went to a command log stream as it was produced, named by its
    # command.started event and its record; the stream holds the very output the model saw.
    started = list(RunEvent.objects.filter(run=run, kind="command.started").order_by("seq"))
    streams = [call["log_stream"] for turn in (coder, guard) for call in turn.tool_calls if call["name"] == "run_tests"]
    assert [event.data["log_stream"] for event in started] == streams and len(set(streams)) == 3
    first_stream = LogStream.objects.get(pk=streams[0])
    assert (first_stream.kind, first_stream.is_open, first_stream.project_id) == ("command", False, card.project_id)
    assert first_stream.refs == {"run": run.pk, "turn": coder.pk, "card": card.pk, "step": 2}
    streamed = "\n".join(first_stream.lines.order_by("seq").values_list("text", flat=True))
    assert "1 failed, 1 passed" in streamed and "test_describe_refuses_empty_names" in streamed


def reactive_profile(server: FakeLLMServer) -> ModelProfile:
    return ModelProfile.objects.create(
        name="tests-fixing-model",
        provider="openai",
        base_url=server.base_url,
        model="fixer:1b",
        context_size=16384,
        max_tokens=1024,
        timeout_seconds=20,
        retry_attempts=1,
    )


def seed_calc(workspace: ProjectWorkspace) -> int:
    secret = random.randint(5, 999)
    commit_on_main(
        workspace,
        {
            "calc.py": f"def add(a, b):\n    return a + b + {secret}\n",
            "test_calc.py": (
                "from calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n\n\n"
                "def test_it_answers():\n    assert add(0, 0) is not None\n"
            ),
        },
    )
    return secret


def test_a_model_fixes_what_only_the_observation_shows_and_the_passing_run_counts() -> None:
    epic, card, workspace = make_epic([])
    secret = seed_calc(workspace)
    model = TestsFixingModel()
    with FakeLLMServer(responder=model) as server:
        run = drive(services.run_start(epic=epic, profile=reactive_profile(server)).pk)
    assert server.errors == []
    assert model.errors == [], model.errors
    assert model.learned == secret
    assert model.seen_statuses == ["failed", "passed"]
    assert run.status == "succeeded", run.status_reason
    card.refresh_from_db()
    assert card.status == "done"
    assert git_show(workspace, f"card/{card.pk}", "calc.py") == "def add(a, b):\n    return a + b\n"
    assert [r.status for r in card_tests_runs(card)] == ["failed", "passed"]


def test_a_write_after_the_passing_run_makes_it_stale_and_the_guard_is_refused() -> None:
    epic, card, workspace = make_epic([])
    seed_calc(workspace)
    model = TestsFixingModel(extra_write=True)
    with FakeLLMServer(responder=model) as server:
        drive(services.run_start(epic=epic, profile=reactive_profile(server)).pk)
    assert model.errors == [], model.errors
    card.refresh_from_db()
    assert card.status != "done"
    assert card.last_verification == ""  # the note's commit cleared the pass
    guard = Turn.objects.filter(card=card, role="integrity_guard").first()
    assert guard is not None
    refused = [call for call in guard.tool_calls if call["name"] == "update_card_status"]
    assert refused and refused[0]["decision"] == "refused" and refused[0]["rule"] == "verification_required"


@pytest.fixture
def review_card() -> Callable[[dict[str, str]], tuple[Card, ProjectWorkspace]]:
    def make(files: dict[str, str]) -> tuple[Card, ProjectWorkspace]:
        _epic, card, workspace = make_epic([])
        commit_on_main(workspace, files)
        workspace.card_worktree(card.pk)
        for status in ("in_progress", "code_review"):
            board_services.card_transition(card=card, to_status=status, actor=Actor.orket("test"))
        return Card.objects.get(pk=card.pk), workspace

    return make


GUARD = Actor.for_seat("quality_assurance", ["integrity_guard"], can_finalize=True)
FAILING = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n",
}
PASSING = {**FAILING, "calc.py": "def add(a, b):\n    return a + b\n"}


def guard_done(card: Card, guard: Actor) -> str:
    try:
        board_services.card_transition(card=Card.objects.get(pk=card.pk), to_status="done", actor=guard)
    except TransitionRefused as refused:
        return refused.code
    return "done"


def test_the_gate_refuses_a_failing_run_an_uncommitted_one_and_one_a_person_fixture_is_required_for(
    review_card: Callable[[dict[str, str]], tuple[Card, ProjectWorkspace]],
) -> None:
    card, workspace = review_card(FAILING)
    summary = card_tests_run(card=card, requested_by="quality_assurance")
    assert summary["status"] == "failed" and summary["verification"]["counts_for_gate"] is True
    assert guard_done(card, GUARD) == "verification_failed"

    checkout = workspace.card_worktree(card.pk)
    (checkout / "calc.py").write_text(PASSING["calc.py"])  # not committed: the run does not speak for the card
    summary = card_tests_run(card=card, requested_by="quality_assurance")
    assert summary["status"] == "passed" and summary["verification"]["counts_for_gate"] is False
    assert "not committed" in summary["verification"]["why"]
    assert guard_done(card, GUARD) == "verification_failed"

    workspace.commit_card(card.pk, seat="senior_developer", message="fix add")
    narrowed = card_tests_run(card=card, requested_by="quality_assurance", path="test_calc.py")
    assert narrowed["status"] == "passed" and narrowed["verification"]["counts_for_gate"] is False

    SandboxSettings.objects.update_or_create(project_id=card.project_id, defaults={"require_human_fixture": True})
    summary = card_tests_run(card=card, requested_by="quality_assurance")
    assert summary["status"] == "passed" and summary["verification"]["counts_for_gate"] is False
    assert "owned by a person" in summary["verification"]["why"]
    assert guard_done(card, GUARD) == "verification_failed"

    SandboxSettings.objects.filter(project_id=card.project_id).update(require_human_fixture=False)
    summary = card_tests_run(card=card, requested_by="quality_assurance")
    assert summary["verification"]["counts_for_gate"] is True
    assert guard_done(card, GUARD) == "done"
    assert [r.status for r in card_tests_runs(card)] == ["failed", "passed", "passed", "passed", "passed"]
