"""The turn loop against fake model servers whose answers depend on what they are sent.

The coder of a one-card epic reads a file and writes its content into another file, which it can do only
when the observation of its read reaches it; the model checks at every request that the conversation holds
each of its earlier answers followed by the observation of exactly those calls, in order, once
(tests/agents/reactive_model.py). Each protocol the engine speaks is covered: OpenAI-compatible SSE and
Ollama NDJSON, calls written as JSON text and native tool calls, and constrained output.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from agents import services
from agents.models import ModelProfile, Run, Turn
from agents.services import seed_standard_configuration
from agents.workspaces import ProjectWorkspace, git_env, project_workspace_root
from boards.actors import Actor
from boards.models import Card, CardHistory, Epic, Project
from boards.services import epic_import
from tests.agents.engine_support import drive
from tests.agents.fake_llm import FakeLLMServer, RecordedRequest
from tests.agents.reactive_model import COPY, SOURCE, ReactiveModel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def source_text() -> str:
    # Unforgeable, several lines, quotes, braces and JSON-looking text, non-ASCII, a trailing newline.
    return (
        f"Token {uuid.uuid4()}\n"
        '  indented "quoted" {"tool": "delete_file", "args": {"path": "x"}}\n'
        "Grüße, naïve café ✓\n"
        "\n"
        "last line\n"
    )


@pytest.fixture
def copy_epic(settings: Any, tmp_path: Path, source_text: str) -> Epic:
    """A one-card epic for the coder, in a project whose main branch holds notes/source.txt."""
    settings.DATA_DIR = tmp_path
    seed_standard_configuration()
    project = Project.objects.create(name="Copy", slug="copy", require_verification=False)
    epic = epic_import(
        project=project,
        data={
            "name": "Copy work",
            "team": "standard",
            "cards": [{"summary": "Copy the notes", "seat": "senior_developer"}],
        },
        actor=Actor.orket("test"),
    )
    workspace = ProjectWorkspace(project_workspace_root(settings.DATA_DIR, project.pk))
    workspace.ensure()
    (workspace.repo / "notes").mkdir()
    (workspace.repo / SOURCE).write_text(source_text, encoding="utf-8")
    for args in (["add", SOURCE], ["commit", "--quiet", "-m", "Seed the notes"]):
        subprocess.run(["git", *args], cwd=workspace.repo, env=git_env(), check=True, capture_output=True)
    return epic


def fake_profile(
    server: FakeLLMServer, provider: str, *, native: bool = False, constrained: bool = False
) -> ModelProfile:
    return ModelProfile.objects.create(
        name=f"reactive-{provider}-{'native' if native else 'text'}{'-constrained' if constrained else ''}",
        provider=provider,
        base_url=server.base_url,
        model="reactive:1b",
        context_size=8192,
        max_tokens=1024,
        timeout_seconds=10,
        retry_attempts=1,
        supports_native_tools=native,
        supports_json_schema=constrained,
    )


def git_show(epic: Epic, ref: str, path: str) -> str:
    repo = project_workspace_root(settings.DATA_DIR, epic.project_id) / "repo"
    shown = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=repo, env=git_env(), capture_output=True, check=True)
    return shown.stdout.decode("utf-8")


def assert_the_copy_was_made(epic: Epic, run: Run, model: ReactiveModel, source_text: str) -> Card:
    card = Card.objects.get(epic=epic)
    assert model.errors == [], model.errors
    assert run.status == "succeeded", run.status_reason
    assert git_show(epic, f"card/{card.pk}", COPY) == source_text
    assert git_show(epic, "main", COPY) == source_text  # merged once the guard finished the card
    assert model.guard_saw == source_text
    # The coder handed the card to review itself, and another seat finished it.
    review = CardHistory.objects.get(card=card, to_status="code_review")
    assert review.actor_seat == "senior_developer"
    assert CardHistory.objects.get(card=card, to_status="done").actor_seat == "quality_assurance"
    assert card.status == "done"
    coder, guard = Turn.objects.filter(run=run).order_by("id")
    assert [s.outcome for s in coder.steps.order_by("number")] == ["calls", "calls", "handoff"]
    assert [s.outcome for s in guard.steps.order_by("number")] == ["calls", "handoff"]
    assert model.answered == 5  # each step asked the model exactly once
    return card


PROTOCOLS = [
    pytest.param("openai", False, id="openai-json-text"),
    pytest.param("ollama", False, id="ollama-json-text"),
    pytest.param("openai", True, id="openai-native"),
    pytest.param("ollama", True, id="ollama-native"),
]


@pytest.mark.parametrize(("provider", "native"), PROTOCOLS)
def test_the_coder_copies_what_it_read_and_sees_every_observation_once_in_order(
    copy_epic: Epic, source_text: str, provider: str, native: bool
) -> None:
    model = ReactiveModel(protocol=provider, native=native)
    with FakeLLMServer(responder=model) as server:
        run = drive(services.run_start(epic=copy_epic, profile=fake_profile(server, provider, native=native)).pk)
        chat = [r.json() for r in server.requests if r.path.endswith(("/chat/completions", "/api/chat"))]
    assert server.errors == []
    assert_the_copy_was_made(copy_epic, run, model, source_text)
    if native:
        # Native calls are offered as tools, and their results come back as tool messages.
        assert all({"read_file", "write_file"} <= {t["function"]["name"] for t in body["tools"]} for body in chat[:3])
        assert any(m["role"] == "tool" for m in chat[1]["messages"])
        assert not any(str(m.get("content", "")).startswith("ORKET-OBSERVATION") for b in chat for m in b["messages"])
    else:
        assert all("tools" not in body for body in chat)
        assert not any(m["role"] == "tool" for b in chat for m in b["messages"])


@pytest.mark.parametrize("accepts", ["json_schema", "json_object"])
def test_constrained_output_sends_the_remembered_schema_shape_at_every_step(
    copy_epic: Epic, source_text: str, accepts: str
) -> None:
    """The answers are bare JSON objects, as a server constraining its output writes them. A server that
    takes only json_object (llama-cpp-python's) refuses the first request; the shape found is remembered
    and every later request carries it alone."""
    model = ReactiveModel(protocol="openai", accepts_shape=accepts)
    with FakeLLMServer(responder=model) as server:
        profile = fake_profile(server, "openai", constrained=True)
        run = drive(services.run_start(epic=copy_epic, profile=profile).pk)
    card = Card.objects.get(epic=copy_epic)
    assert model.errors == [], model.errors
    assert run.status == "succeeded", run.status_reason
    assert git_show(copy_epic, f"card/{card.pk}", COPY) == source_text
    assert model.guard_saw == source_text
    refused_first = ["json_schema"] if accepts != "json_schema" else []
    assert model.shapes == [*refused_first, *[accepts] * model.answered]
    assert model.answered == 5
    profile.refresh_from_db()
    assert profile.json_schema_shape == accepts
    steps = [s for turn in Turn.objects.filter(run=run) for s in turn.steps.all()]
    assert {s.schema_shape for s in steps} == {accepts}
    assert run.events.filter(kind="model.schema_shape", data__shape=accepts).count() == 1


# -- the checker is not vacuous -----------------------------------------------------------------------------


def _steps_of(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The messages after the first two, grouped by step: an assistant message and what follows it."""
    groups: list[list[dict[str, Any]]] = []
    for message in messages[2:]:
        if message["role"] == "assistant":
            groups.append([])
        groups[-1].append(message)
    return groups


def _with_steps(request: RecordedRequest, groups: list[list[dict[str, Any]]]) -> RecordedRequest:
    body = request.json()
    body["messages"] = body["messages"][:2] + [m for group in groups for m in group]
    return RecordedRequest(request.method, request.path, request.headers, json.dumps(body).encode())


def duplicated(groups: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    return [groups[0] + [groups[0][-1]], *groups[1:]]


def missing(groups: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    return [groups[0][:-1], *groups[1:]]


def out_of_order(groups: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    return [groups[1], groups[0], *groups[2:]]


def swapped_calls(groups: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """The observations of step 1's two calls in the wrong order (native: two tool messages)."""
    first = groups[0]
    if len(first) == 3:
        return [[first[0], first[2], first[1]], *groups[1:]]
    text = first[1]["content"]
    swapped = text.replace("ORKET-CALL: 1 list_directory", "ORKET-CALL: 1 read_file", 1)
    swapped = swapped.replace("ORKET-CALL: 2 read_file", "ORKET-CALL: 2 list_directory", 1)
    return [[first[0], {**first[1], "content": swapped}], *groups[1:]]


@pytest.mark.parametrize(("provider", "native"), PROTOCOLS)
def test_the_model_notices_a_broken_conversation(copy_epic: Epic, provider: str, native: bool) -> None:
    """Replaying the requests of a real run into a fresh model gives no errors and the same answers; the
    third request (two steps of history) broken by hand gives an error, whichever way it is broken."""
    model = ReactiveModel(protocol=provider, native=native)
    with FakeLLMServer(responder=model) as server:
        drive(services.run_start(epic=copy_epic, profile=fake_profile(server, provider, native=native)).pk)
    assert model.errors == []
    chat = [r for r in server.requests if r.path.endswith(("/chat/completions", "/api/chat"))]

    replayed = ReactiveModel(protocol=provider, native=native)
    for request in chat:
        replayed(request)
    assert replayed.errors == [] and replayed.answered == model.answered

    third = chat[2]
    assert len(_steps_of(third.json()["messages"])) == 2
    for corrupt in (duplicated, missing, out_of_order, swapped_calls):
        fresh = ReactiveModel(protocol=provider, native=native)
        fresh(chat[0])
        fresh(chat[1])
        assert fresh.errors == []
        fresh(_with_steps(third, corrupt(_steps_of(third.json()["messages"]))))
        assert fresh.errors, f"{corrupt.__name__} went unnoticed"
