"""GET /api/cards/{id}/turns/: the turns that worked on a card, for the card drawer."""

from __future__ import annotations

import pytest

from boards.models import Card, Epic, Membership, ProjectRole
from orket_site.seed import seed_first_run
from tests.agents.engine_support import drive

pytestmark = pytest.mark.django_db(transaction=True)


def test_viewers_read_the_turns_of_a_card_newest_first_and_strangers_get_404(settings, tmp_path, make_user, api_as):
    settings.DATA_DIR = tmp_path
    seed_first_run()
    epic = Epic.objects.get(project__slug="demo")
    member, viewer = make_user("turns-member"), make_user("turns-viewer")
    Membership.objects.create(project=epic.project, user=member, role=ProjectRole.MEMBER)
    Membership.objects.create(project=epic.project, user=viewer, role=ProjectRole.VIEWER)
    card = Card.objects.filter(epic=epic).order_by("rank", "id").first()
    assert card is not None
    assert api_as(viewer).get(f"/api/cards/{card.pk}/turns/").json() == {"card": card.pk, "results": []}
    run_id = api_as(member).post(f"/api/cards/{card.pk}/runs/", {"model_profile": "scripted-demo"}, format="json")
    assert run_id.status_code == 201, run_id.content
    drive(run_id.json()["id"])

    turns = api_as(viewer).get(f"/api/cards/{card.pk}/turns/").json()["results"]
    assert turns, "the run worked on the card"
    assert [turn["id"] for turn in turns] == sorted((turn["id"] for turn in turns), reverse=True)
    first = turns[0]
    assert first["run"] == run_id.json()["id"] and first["run_status"] == "succeeded"
    assert {"seat", "role", "status", "outcome", "number", "started_at", "finished_at"} <= set(first)
    assert "messages" not in first  # prompts stay in the run view
    assert api_as(make_user("stranger")).get(f"/api/cards/{card.pk}/turns/").status_code == 404
