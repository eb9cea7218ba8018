"""The run API and the run_epic command, end to end with the scripted team."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import ModelProfile, Run, Team, Turn
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, Epic, Membership, ProjectRole
from orket_site.seed import seed_first_run
from tests.agents.engine_support import drive, worker_thread

pytestmark = pytest.mark.django_db(transaction=True)
CODER = Actor.for_seat("senior_developer", ("coder",))


@pytest.fixture
def demo(settings, tmp_path, make_user):
    settings.DATA_DIR = tmp_path
    seed_first_run()
    epic = Epic.objects.get(project__slug="demo")
    users = {}
    for role in ProjectRole.values:
        users[role] = make_user(f"demo-{role}")
        Membership.objects.create(project=epic.project, user=users[role], role=role)
    return epic, users


def test_member_starts_a_run_and_reads_its_events_and_turns(demo, api_as):
    epic, users = demo
    client = api_as(users["member"])
    started = client.post(f"/api/epics/{epic.pk}/runs/", {"model_profile": "scripted-demo"}, format="json")
    assert started.status_code == 201, started.content
    body = started.json()
    assert (body["status"], body["model"], body["provider"]) == ("queued", "scripted", "scripted")
    drive(body["id"])

    run = client.get(f"/api/runs/{body['id']}/").json()
    assert run["status"] == "succeeded" and run["active_turns"] == []
    first = client.get(f"/api/runs/{body['id']}/events/", {"after": 0, "limit": 10}).json()
    assert [e["seq"] for e in first["events"]] == list(range(1, 11))
    rest = client.get(f"/api/runs/{body['id']}/events/", {"after": 10}).json()
    assert rest["events"][0]["seq"] == 11 and rest["events"][-1]["seq"] == run["last_seq"]
    assert {"seq", "kind", "turn", "card", "at"} <= set(rest["events"][0])
    turns = client.get(f"/api/runs/{body['id']}/turns/").json()["results"]
    assert turns and all(t["status"] == "succeeded" and t["model"] == "scripted" for t in turns)
    assert turns[0]["messages"][0]["role"] == "system" and turns[0]["tool_calls"]


def test_turns_carry_their_steps_and_the_card_drawer_counts_them_in_constant_queries(demo, api_as):
    epic, users = demo
    started = api_as(users["member"]).post(
        f"/api/epics/{epic.pk}/runs/", {"model_profile": "scripted-demo"}, format="json"
    )
    run_id = started.json()["id"]
    assert drive(run_id).status == "succeeded"
    client = api_as(users["viewer"])

    turns = client.get(f"/api/runs/{run_id}/turns/", {"page_size": 500}).json()["results"]
    events = client.get(f"/api/runs/{run_id}/events/", {"after": 0}).json()["events"]
    assert {turn["purpose"] for turn in turns} == {"work", "review"}
    scripted = ModelProfile.objects.get(name="scripted-demo").pk
    assert {turn["model_profile"] for turn in turns} == {scripted}
    for turn in turns:
        steps = turn["steps"]
        assert [step["number"] for step in steps] == list(range(1, len(steps) + 1)), turn["id"]
        assert all(step["finished_at"] and step["outcome"] for step in steps)
        calls = [(e["step"], e["name"]) for e in events if e["turn"] == turn["id"] and e["kind"] == "tool.call"]
        assert [(step["number"], call["name"]) for step in steps for call in step["calls"]] == calls
        finished = [e for e in events if e["turn"] == turn["id"] and e["kind"] == "step.finished"]
        assert [(e["step"], e["tokens_in"], e["tokens_out"]) for e in finished] == [
            (step["number"], step["tokens_in"], step["tokens_out"]) for step in steps
        ]

    # The card drawer's list: the steps of each turn counted, in the same number of queries
    # whether a card had two turns or four (the card sent back once has four).
    queries: dict[int, int] = {}
    for card_id in {turn["card"] for turn in turns}:
        with CaptureQueriesContext(connection) as captured:
            rows = client.get(f"/api/cards/{card_id}/turns/").json()["results"]
        queries[len(rows)] = len(captured)
        expected = {turn["id"]: len(turn["steps"]) for turn in turns if turn["card"] == card_id}
        assert {row["id"]: row["steps_count"] for row in rows} == expected
        assert {row["purpose"] for row in rows} <= {"work", "review"}
    assert len(queries) > 1 and len(set(queries.values())) == 1, queries

    # The run's turns: their steps come in the same number of queries for a page of two or of all.
    counted = []
    for size in (2, 500):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/api/runs/{run_id}/turns/", {"page_size": size}).status_code == 200
        counted.append(len(captured))
    assert counted[0] == counted[1], counted


def test_viewer_cannot_start_or_cancel_and_non_member_sees_nothing(demo, api_as, make_user):
    epic, users = demo
    assert api_as(users["viewer"]).post(f"/api/epics/{epic.pk}/runs/", {}, format="json").status_code == 403
    run_id = api_as(users["member"]).post(f"/api/epics/{epic.pk}/runs/", {}, format="json").json()["id"]
    assert api_as(users["viewer"]).post(f"/api/runs/{run_id}/cancel/").status_code == 403
    stranger = api_as(make_user("stranger"))
    assert stranger.get(f"/api/runs/{run_id}/").status_code == 404
    assert stranger.get(f"/api/runs/{run_id}/events/").status_code == 404
    assert stranger.get("/api/runs/").json()["count"] == 0


def test_cancel_over_the_api(demo, api_as):
    epic, users = demo
    client = api_as(users["member"])
    run_id = client.post(f"/api/epics/{epic.pk}/runs/", {}, format="json").json()["id"]
    canceled = client.post(f"/api/runs/{run_id}/cancel/")
    assert canceled.status_code == 200 and canceled.json()["cancel_requested"] is True
    assert drive(run_id).status == "canceled"


def test_bad_run_requests_are_refused(demo, api_as):
    epic, users = demo
    client = api_as(users["member"])
    unknown = client.post(f"/api/epics/{epic.pk}/runs/", {"model_profile": "gpt-17"}, format="json")
    assert unknown.status_code == 409 and unknown.json()["code"] == "unknown_profile"
    too_wide = client.post(f"/api/epics/{epic.pk}/runs/", {"max_parallel": 99}, format="json")
    assert too_wide.status_code == 400
    assert client.post(f"/api/epics/{epic.pk}/runs/", {}, format="json").status_code == 201
    again = client.post(f"/api/epics/{epic.pk}/runs/", {}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "run_active"
    assert Run.objects.count() == 1


def test_one_card_can_be_run_alone(demo, api_as):
    epic, users = demo
    design = epic.cards.order_by("rank").first()
    response = api_as(users["member"]).post(f"/api/cards/{design.pk}/runs/", {}, format="json")
    assert response.status_code == 201
    run = drive(response.json()["id"])
    assert run.status == "succeeded"
    assert list(epic.cards.order_by("rank").values_list("status", flat=True)) == ["done", "ready", "ready", "ready"]


def test_prompt_preview_for_a_role(demo, api_as):
    epic, users = demo
    card = epic.cards.order_by("rank").last()
    client = api_as(users["viewer"])
    preview = client.get(f"/api/cards/{card.pk}/prompt/", {"role": "integrity_guard"}).json()
    assert preview["role"] == "integrity_guard" and preview["seat"] == "quality_assurance"
    assert card.title in preview["messages"][1]["content"]
    default = client.get(f"/api/cards/{card.pk}/prompt/").json()
    assert default["seat"] == "senior_developer"
    assert client.get(f"/api/cards/{card.pk}/prompt/", {"role": "wizard"}).status_code == 400


def test_run_epic_command_prints_progress_and_exits_by_outcome(demo):
    epic, _ = demo
    out = StringIO()
    with worker_thread():
        call_command("run_epic", str(epic.pk), "--wait", "--timeout", "120", stdout=out)
    text = out.getvalue()
    assert "succeeded" in text and "tool.call" in text and "turn.succeeded" in text
    with pytest.raises(CommandError, match="no epic"):
        call_command("run_epic", "999999")


def test_a_large_epic_needs_architecture_governance_before_it_can_run(demo, api_as):
    epic, users = demo
    client = api_as(users["member"])
    for index in range(4):  # the demo epic has 4 cards; the default threshold is 7
        client.post("/api/cards/", {"epic": epic.pk, "title": f"Extra card {index}"}, format="json")
    assert epic.cards.count() == 8
    refused = client.post(f"/api/epics/{epic.pk}/runs/", {}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "complexity_gate"
    assert not Run.objects.exists()
    epic.architecture_governance = True
    epic.save(update_fields=["architecture_governance"])
    assert client.post(f"/api/epics/{epic.pk}/runs/", {}, format="json").status_code == 201


def test_the_runs_list_takes_the_same_queries_for_two_runs_or_twelve(demo, api_as):
    epic, users = demo
    client = api_as(users["viewer"])
    profile, team = ModelProfile.objects.get(name="scripted-demo"), Team.objects.get(name="standard")
    cards = list(Card.objects.filter(epic=epic).order_by("pk"))
    board_services.card_transition(card=cards[0], to_status="in_progress", actor=CODER, reason="test")

    def add_runs(count: int) -> None:
        for index in range(count):
            card = cards[index % len(cards)] if index % 2 else None
            run = Run.objects.create(project=epic.project, epic=epic, card=card, team=team, model_profile=profile)
            status = "succeeded" if Turn.objects.filter(card=cards[0]).exists() else "queued"
            Turn.objects.create(
                run=run, card=cards[0], number=1, seat="s", role="coder", model="m", provider="p", status=status
            )

    counted = {}
    for total in (2, 12):
        add_runs(total - Run.objects.count())
        with CaptureQueriesContext(connection) as captured:
            rows = client.get("/api/runs/", {"page_size": 50}).json()["results"]
        counted[total] = len(captured)
        assert len(rows) == total
    assert counted[2] == counted[12], counted
    epic_cards, done = len(cards), sum(card.status == "done" for card in cards)
    for row in rows:
        expected = (1, 0) if row["card"] else (epic_cards, done)
        assert (row["cards_total"], row["cards_done"]) == expected, row
    active = [(row["id"], turn["card"]) for row in rows for turn in row["active_turns"]]
    assert active == [(Turn.objects.get(status="queued").run_id, cards[0].pk)]
