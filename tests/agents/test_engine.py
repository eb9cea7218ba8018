"""The engine end to end with the scripted team: real Celery worker, real database, real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from agents import engine, leases, services
from agents.models import Run, RunEvent, Turn
from boards.models import Card, CardHistory, Epic, Project
from orket_site.seed import seed_first_run
from tests.agents.engine_support import wait_for_run, worker_thread

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo_epic(settings, tmp_path) -> Epic:
    settings.DATA_DIR = tmp_path
    seed_first_run()
    return Epic.objects.get(project__slug="demo")


def test_demo_epic_runs_to_success_with_the_scripted_team(demo_epic: Epic, tmp_path: Path) -> None:
    with worker_thread():
        run = services.run_start(epic=demo_epic)
        run = wait_for_run(run.pk)
    problems = list(
        RunEvent.objects.filter(
            run=run, kind__in=["tool.refused", "tool.error", "card.blocked", "parse.problem"]
        ).values_list("kind", "card_id", "data")
    )
    assert run.status == "succeeded", (run.status_reason, problems)
    cards = list(Card.objects.filter(epic=demo_epic).order_by("rank"))
    assert [card.status for card in cards] == ["done"] * 4
    demo_epic.refresh_from_db()
    assert demo_epic.status == "done"
    # The final status is the run's last event, so a client may stop reading when it arrives.
    kinds = list(run.events.order_by("seq").values_list("kind", flat=True))
    assert kinds[-2:] == ["epic.status", "run.status"], kinds[-5:]

    # Each card was finished by the integrity guard, never by the seat that did the work.
    for card in cards:
        done = CardHistory.objects.get(card=card, to_status="done")
        assert done.actor_seat == "quality_assurance"
        assert "integrity_guard" in done.actor_roles
        started = CardHistory.objects.filter(card=card, to_status="in_progress").order_by("id").first()
        assert started.actor_seat == card.seat

    # The card labelled needs-changes went back once with the guard's feedback.
    formatter = cards[1]
    sent_back = CardHistory.objects.filter(card=formatter, from_status="code_review", to_status="in_progress")
    assert sent_back.count() == 1 and sent_back.get().actor_seat == "quality_assurance"

    # Dependencies were respected: nothing started before what it depends on was done.
    design_done = CardHistory.objects.get(card=cards[0], to_status="done").created_at
    for card in cards[1:3]:
        assert CardHistory.objects.filter(card=card, to_status="in_progress").earliest("id").created_at >= design_done

    # Events are numbered without gaps, and every turn completed exactly once.
    seqs = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] == run.last_seq
    assert not Turn.objects.filter(run=run).exclude(status="succeeded").exists()
    assert RunEvent.objects.filter(run=run, kind="turn.succeeded").count() == Turn.objects.filter(run=run).count()

    # The workspace's git history holds the seats' commits, merged into main.
    repo = settings.DATA_DIR / "workspaces" / f"project-{demo_epic.project_id}" / "repo"
    log = subprocess.run(
        ["git", "log", "--format=%an|%s", "main"], cwd=repo, capture_output=True, text=True, check=True
    )
    authors = {line.split("|")[0] for line in log.stdout.splitlines()}
    assert {"lead_architect", "senior_developer"} <= authors
    assert all(f"card {card.pk}" in log.stdout for card in cards)


def test_a_run_is_refused_while_another_run_of_the_epic_is_active(demo_epic: Epic) -> None:
    services.run_start(epic=demo_epic)
    with pytest.raises(engine.EngineError) as refused:
        services.run_start(epic=demo_epic)
    assert refused.value.code == "run_active"


def test_a_turn_is_executed_once_even_when_its_task_is_delivered_twice(demo_epic: Epic) -> None:
    run = services.run_start(epic=demo_epic)
    services.run_advance(run_id=run.pk)
    turn = Turn.objects.get(run=run)
    services.turn_execute(turn_id=turn.pk)
    services.turn_execute(turn_id=turn.pk)  # a redelivered task finds the turn taken
    turn.refresh_from_db()
    assert turn.status == "succeeded" and turn.attempts == 1
    assert RunEvent.objects.filter(run=run, kind="turn.started", turn=turn).count() == 1


def test_cancel_stops_the_run_and_writes_the_final_status_once(demo_epic: Epic) -> None:
    run = services.run_start(epic=demo_epic)
    services.run_advance(run_id=run.pk)
    services.run_cancel(run=run)
    services.run_advance(run_id=run.pk)
    services.run_advance(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "canceled"
    assert RunEvent.objects.filter(run=run, kind="run.status", data__status="canceled").count() == 1
    assert not Turn.objects.filter(run=run, status__in=["queued", "running"]).exists()


def test_stale_turns_go_back_to_the_queue_and_then_fail(demo_epic: Epic) -> None:
    run = services.run_start(epic=demo_epic)
    services.run_advance(run_id=run.pk)
    turn = Turn.objects.get(run=run)
    assert services.turn_claim(turn_id=turn.pk, owner="dead-worker") is not None
    Turn.objects.filter(pk=turn.pk).update(lease_expires_at=turn.created_at)
    assert services.turns_reap_stale() == 1
    turn.refresh_from_db()
    assert turn.status == "queued" and turn.lease_owner == ""
    Turn.objects.filter(pk=turn.pk).update(
        status="running", attempts=leases.MAX_TURN_ATTEMPTS, lease_owner="dead-again", lease_expires_at=turn.created_at
    )
    assert services.turns_reap_stale() == 1
    turn.refresh_from_db()
    assert turn.status == "failed"


def test_project_is_untouched_for_non_members(demo_epic: Epic, api_as, make_user) -> None:
    response = api_as(make_user()).post(f"/api/epics/{demo_epic.pk}/runs/", {}, format="json")
    assert response.status_code == 404
    assert not Run.objects.exists()
    assert Project.objects.count() == 1
