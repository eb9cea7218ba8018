"""GET /api/runs/{id}/export/: the run, its turns and its events as one JSON Lines file."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.http import StreamingHttpResponse
from django.test import AsyncRequestFactory
from rest_framework.test import force_authenticate

from agents.api.runs import RunViewSet
from agents.export import PAGE_SIZE, export_chunks, export_chunks_async, export_lines
from agents.models import Run, Turn
from agents.run_events import event_append
from boards.models import Epic, Membership, ProjectRole
from orket_site.seed import seed_first_run
from tests.agents.engine_support import drive

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def finished_run(settings, tmp_path, make_user):
    settings.DATA_DIR = tmp_path
    seed_first_run()
    epic = Epic.objects.get(project__slug="demo")
    member = make_user("exporter")
    Membership.objects.create(project=epic.project, user=member, role=ProjectRole.MEMBER)
    viewer = make_user("reader")
    Membership.objects.create(project=epic.project, user=viewer, role=ProjectRole.VIEWER)
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(member)
    started = client.post(f"/api/epics/{epic.pk}/runs/", {"model_profile": "scripted-demo"}, format="json")
    assert started.status_code == 201, started.content
    run = drive(started.json()["id"])
    assert run.status == "succeeded", run.status_reason
    return run, viewer


def all_event_frames(client, run_id: int) -> list[dict]:
    frames: list[dict] = []
    while True:
        page = client.get(f"/api/runs/{run_id}/events/", {"after": frames[-1]["seq"] if frames else 0}).json()
        if not page["events"]:
            return frames
        frames += page["events"]


def test_export_of_a_finished_run_holds_the_run_every_turn_and_every_event(finished_run, api_as):
    run, viewer = finished_run
    client = api_as(viewer)
    response = client.get(f"/api/runs/{run.pk}/export/")
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == f'attachment; filename="run-{run.pk}.jsonl"'
    body = b"".join(response.streaming_content).decode()
    assert body.endswith("\n")
    lines = [json.loads(line) for line in body.splitlines()]

    head = lines[0]
    assert (head["type"], head["format"]) == ("run", 1)
    assert head["run"]["id"] == run.pk and head["run"]["status"] == "succeeded"
    assert head["run"]["model_profile"]["name"] == "scripted-demo"
    assert head["run"]["model_profile"]["provider"] == "scripted"
    assert head["run"]["team"]["name"] == run.team.name
    assert head["run"]["epic"] == {"id": run.epic_id, "name": run.epic.name}
    assert head["run"]["project"]["slug"] == "demo"
    assert head["run"]["last_seq"] == run.last_seq
    assert head["run"]["tokens_out"] == run.tokens_out > 0
    run_fields = {f.attname for f in Run._meta.concrete_fields}
    assert {f"{name}_id" if f"{name}_id" in run_fields else name for name in head["run"]} == run_fields

    kinds = [line["type"] for line in lines]
    turn_count = Turn.objects.filter(run=run).count()
    assert kinds == ["run"] + ["turn"] * turn_count + ["event"] * run.last_seq

    turns = [line["turn"] for line in lines if line["type"] == "turn"]
    assert [t["id"] for t in turns] == list(Turn.objects.filter(run=run).order_by("id").values_list("id", flat=True))
    api_turns = client.get(f"/api/runs/{run.pk}/turns/", {"page_size": 500}).json()["results"]
    by_id = {t["id"]: t for t in api_turns}
    for turn in turns:
        stored = by_id[turn["id"]]
        for field in ("seat", "role", "model", "messages", "raw_answer", "reasoning", "tool_calls", "commit_sha"):
            assert turn[field] == stored[field], field
        for field in ("tokens_in", "tokens_out", "time_to_first_token_ms", "duration_ms", "outcome", "status"):
            assert turn[field] == stored[field], field
        assert turn["run"] == run.pk and turn["card"] == stored["card"]
        assert turn["started_at"] and turn["finished_at"]
    stored_fields = {f.attname for f in Turn._meta.concrete_fields}
    renamed = {"run": "run_id", "card": "card_id", "model_profile": "model_profile_id"}
    assert {renamed.get(name, name) for name in turns[0] if name != "steps"} == stored_fields
    # Every step of every turn, in order, as the turns API gives them.
    for turn in turns:
        assert [step["number"] for step in turn["steps"]] == list(range(1, len(turn["steps"]) + 1))
        moments = ("answer_recorded_at", "created_at", "finished_at")  # the same instants, written two ways
        assert [{k: v for k, v in step.items() if k not in moments} for step in turn["steps"]] == [
            {k: v for k, v in step.items() if k not in moments} for step in by_id[turn["id"]]["steps"]
        ]
        assert [call for step in turn["steps"] for call in step["calls"]] == [
            {key: value for key, value in call.items() if key != "step"} for call in turn["tool_calls"]
        ]
    assert any(call.get("result") for turn in turns for call in turn["tool_calls"])

    events = [line["event"] for line in lines if line["type"] == "event"]
    assert [e["seq"] for e in events] == list(range(1, run.last_seq + 1))
    assert events == all_event_frames(client, run.pk)


def test_export_is_for_members_only(finished_run, api_as, make_user):
    run, _ = finished_run
    stranger = api_as(make_user("stranger"))
    assert stranger.get(f"/api/runs/{run.pk}/export/").status_code == 404


def test_export_pages_through_long_runs_and_cuts_at_the_last_seq_read_first(finished_run):
    run, _ = finished_run
    for index in range(PAGE_SIZE * 2 + 3):
        event_append(run.pk, "text", text=f"more {index}")
    run.refresh_from_db()
    lines = list(export_lines(run))
    events = [json.loads(line)["event"] for line in lines if line.startswith('{"type":"event"')]
    assert [e["seq"] for e in events] == list(range(1, run.last_seq + 1))

    chunks = list(export_chunks(run, chunk_bytes=4096))
    assert len(chunks) > 2 and b"".join(chunks).decode() == "".join(lines)

    # Events appended while an export is being read are not in it: it is the record as of its start.
    reader = export_lines(run)
    next(reader)
    event_append(run.pk, "text", text="too late")
    assert [json.loads(line) for line in reader][-1]["event"]["seq"] == run.last_seq
    assert Run.objects.get(pk=run.pk).last_seq == run.last_seq + 1


def test_async_chunks_equal_the_sync_ones(finished_run):
    run, _ = finished_run

    async def collect() -> list[bytes]:
        try:
            return [chunk async for chunk in export_chunks_async(run, chunk_bytes=2048)]
        finally:
            await sync_to_async(connections.close_all)()  # the sync thread's connection, not this one's

    assert asyncio.run(collect()) == list(export_chunks(run, chunk_bytes=2048))


def test_under_asgi_the_export_is_an_async_stream(finished_run):
    """Under ASGI Django would read a synchronous iterator to the end into memory before sending."""
    run, viewer = finished_run
    request = AsyncRequestFactory().get(f"/api/runs/{run.pk}/export/")
    force_authenticate(request, viewer)
    response = RunViewSet.as_view({"get": "export"})(request, pk=str(run.pk))
    assert response.status_code == 200 and response.is_async

    async def collect() -> bytes:
        try:
            return b"".join([chunk async for chunk in response.streaming_content])
        finally:
            await sync_to_async(connections.close_all)()

    assert asyncio.run(collect()) == b"".join(export_chunks(run))
