"""The REST API for rocks, epics and cards: membership rules, filters, edits, transitions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from boards import services
from boards.actors import Actor
from boards.models import Card, CardHistory, Epic, Project, ProjectRole

Client = Any


def client_for(user: Any) -> APIClient:
    """A client of its own per user (the shared `api` fixture is one client re-authenticated)."""
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def as_role(project: Project, member_of: Callable[..., Any]) -> Callable[[str], Client]:
    return lambda role: client_for(member_of(project, role))


def test_viewer_cannot_transition_member_can_nonmember_gets_404(
    as_role: Callable[[str], Client], make_card: Callable[..., Card], make_user: Callable[..., Any]
) -> None:
    card = make_card("Write it")
    url = f"/api/cards/{card.pk}/transition/"
    viewer = as_role("viewer")
    assert viewer.get(f"/api/cards/{card.pk}/").status_code == 200
    refused = viewer.post(url, {"status": "in_progress"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    stranger = client_for(make_user("stranger"))
    assert stranger.post(url, {"status": "in_progress"}, format="json").status_code == 404
    assert stranger.get(f"/api/cards/{card.pk}/").status_code == 404
    assert Card.objects.get(pk=card.pk).status == "ready"
    member = as_role("member")
    moved = member.post(url, {"status": "in_progress", "reason": "starting"}, format="json")
    assert moved.status_code == 200, moved.json()
    assert moved.json()["status"] == "in_progress"
    history = member.get(f"/api/cards/{card.pk}/history/").json()["results"]
    assert [(h["event"], h["from_status"], h["to_status"], h["reason"]) for h in history] == [
        ("created", "", "ready", ""),
        ("transition", "ready", "in_progress", "starting"),
    ]
    assert history[1]["actor"].startswith("member")


def test_refused_transition_answers_409_with_code(
    as_role: Callable[[str], Client], make_card: Callable[..., Card]
) -> None:
    card = make_card()
    member = as_role("member")
    url = f"/api/cards/{card.pk}/transition/"
    answer = member.post(url, {"status": "done"}, format="json")
    assert answer.status_code == 409
    assert answer.json()["code"] == "illegal_transition"
    assert "ready" in answer.json()["detail"]
    member.post(url, {"status": "in_progress"}, format="json")
    answer = member.post(url, {"status": "blocked"}, format="json")
    assert (answer.status_code, answer.json()["code"]) == (409, "wait_reason_required")
    answer = member.post(url, {"status": "canceled"}, format="json")
    assert (answer.status_code, answer.json()["code"]) == (409, "cancel_forbidden")
    answer = member.post(url, {"status": "blocked", "wait_reason": "review"}, format="json")
    assert (answer.status_code, answer.json()["wait_reason"]) == (200, "review")
    assert as_role("maintainer").post(url, {"status": "canceled"}, format="json").status_code == 200


def test_patch_edits_fields_never_status(as_role: Callable[[str], Client], make_card: Callable[..., Card]) -> None:
    card = make_card()
    member = as_role("member")
    url = f"/api/cards/{card.pk}/"
    answer = member.patch(url, {"status": "done", "title": "Sneaky"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["code"] == "status_readonly"
    assert "transition" in answer.json()["detail"]
    card.refresh_from_db()
    assert (card.status, card.title) == ("ready", "A card")
    answer = member.patch(
        url, {"title": "Better", "priority": "high", "labels": ["ui"], "seat": "coder"}, format="json"
    )
    assert answer.status_code == 200, answer.json()
    assert (answer.json()["title"], answer.json()["priority"], answer.json()["labels"]) == ("Better", 3.0, ["ui"])
    assert CardHistory.objects.filter(card=card, event="edited").get().changes["title"] == ["A card", "Better"]
    assert member.patch(url, {"title": "x" * 301}, format="json").status_code == 400
    assert member.patch(url, {"description": "x" * 50_001}, format="json").status_code == 400
    assert member.patch(url, {"priority": "urgent"}, format="json").status_code == 400
    assert member.patch(url, {"seat": "Not A Seat"}, format="json").status_code == 400
    assert answer.json()["metrics"] == {"score": None, "grade": "", "shippability_threshold": 7.0}
    assert member.patch(url, {"metrics": {"score": "high"}}, format="json").status_code == 400
    scored = member.patch(url, {"metrics": {"score": 8.5, "grade": "B", "shippability_threshold": 7.0}}, format="json")
    assert scored.json()["metrics"]["score"] == 8.5
    assert as_role("viewer").patch(url, {"title": "Viewer edit"}, format="json").status_code == 403


def test_list_filters_search_and_ordering(
    project: Project, epic: Epic, maintainer: Any, make_card: Callable[..., Card], as_role: Callable[[str], Client]
) -> None:
    actor = Actor.for_user(maintainer)
    a = make_card("Login form", priority="high", seat="coder", labels=["ui", "auth"])
    b = make_card("Database schema", priority="low", seat="architect", labels=["db"], description="tables for login")
    c = make_card("Deploy", priority="medium", seat="coder", labels=["ops"])
    services.card_transition(card=c, to_status="in_progress", actor=actor)
    services.card_transition(card=c, to_status="blocked", actor=actor, wait_reason="resource")
    other = services.epic_create(project=project, actor=actor, name="Other")
    d = make_card("Elsewhere", target_epic=other)
    viewer = as_role("viewer")

    def ids(query: str) -> list[int]:
        answer = viewer.get(f"/api/cards/?{query}")
        assert answer.status_code == 200, answer.json()
        return [row["id"] for row in answer.json()["results"]]

    assert ids(f"project={project.pk}") == [a.pk, b.pk, c.pk, d.pk]
    assert ids(f"epic={epic.pk}") == [a.pk, b.pk, c.pk]
    assert ids("status=blocked") == [c.pk]
    assert ids("status=ready,blocked&epic=" + str(epic.pk)) == [a.pk, b.pk, c.pk]
    assert ids("seat=coder") == [a.pk, c.pk]
    assert ids("label=auth") == [a.pk]
    assert ids("label=au") == []
    assert ids("priority=high") == [a.pk]
    assert ids("priority=1") == [b.pk]
    assert ids("blocked=true") == [c.pk]
    assert ids("blocked=false&epic=" + str(epic.pk)) == [a.pk, b.pk]
    assert ids("q=login") == [a.pk, b.pk]
    assert ids("ordering=-priority") == [a.pk, c.pk, d.pk, b.pk]
    assert viewer.get("/api/cards/?ordering=password").status_code == 400
    assert viewer.get("/api/cards/?epic=abc").status_code == 400
    # Cards of projects the user is not in never show up, and asking for that project is a 404.
    foreign = Project.objects.create(name="Foreign", slug="foreign")
    foreign_epic = Epic.objects.create(project=foreign, name="Hidden")
    Card.objects.create(project=foreign, epic=foreign_epic, title="Hidden card")
    assert "Hidden card" not in [row["title"] for row in viewer.get("/api/cards/?page_size=500").json()["results"]]
    assert viewer.get(f"/api/cards/?project={foreign.pk}").status_code == 404


def test_create_rocks_epics_cards(project: Project, as_role: Callable[[str], Client]) -> None:
    member = as_role("member")
    rock = member.post("/api/rocks/", {"project": project.pk, "name": "Q3"}, format="json")
    assert rock.status_code == 201, rock.json()
    epic = member.post("/api/epics/", {"project": project.pk, "name": "Epic", "rock": rock.json()["id"]}, format="json")
    assert epic.status_code == 201, epic.json()
    card = member.post("/api/cards/", {"epic": epic.json()["id"], "title": "First", "priority": "low"}, format="json")
    assert card.status_code == 201, card.json()
    assert (card.json()["status"], card.json()["priority"], card.json()["project"]) == ("ready", 1.0, project.pk)
    assert member.post("/api/cards/", {"epic": epic.json()["id"], "title": ""}, format="json").status_code == 400
    viewer = as_role("viewer")
    assert viewer.post("/api/cards/", {"epic": epic.json()["id"], "title": "No"}, format="json").status_code == 403
    started = member.post(f"/api/cards/{card.json()['id']}/transition/", {"status": "in_progress"}, format="json")
    assert started.status_code == 200
    assert member.get(f"/api/epics/{epic.json()['id']}/").json()["status"] == "in_progress"
    assert member.get(f"/api/rocks/{rock.json()['id']}/").json()["status"] == "in_progress"
    epic_url = f"/api/epics/{epic.json()['id']}/"
    assert member.patch(epic_url, {"status": "done"}, format="json").json()["code"] == "status_readonly"
    refused = member.post(epic_url + "transition/", {"status": "done"}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (409, "children_unfinished")
    assert len(member.get(epic_url + "history/").json()["results"]) == 2


def test_dependencies_comments_and_board(
    project: Project, epic: Epic, make_card: Callable[..., Card], as_role: Callable[[str], Client]
) -> None:
    a, b = make_card("A"), make_card("B")
    member = as_role("member")
    added = member.post(f"/api/cards/{b.pk}/dependencies/", {"depends_on": a.pk}, format="json")
    assert added.status_code == 201 and added.json()["depends_on"] == [a.pk]
    cycle = member.post(f"/api/cards/{a.pk}/dependencies/", {"depends_on": b.pk}, format="json")
    assert (cycle.status_code, cycle.json()["code"]) == (400, "dependency_cycle")
    assert "'A'" in cycle.json()["detail"] and "'B'" in cycle.json()["detail"]
    assert member.get(f"/api/cards/{a.pk}/dependencies/").json() == {"depends_on": [], "dependents": [b.pk]}
    board = member.get(f"/api/epics/{epic.pk}/board/").json()
    assert [card["id"] for card in board["cards"]] == [a.pk, b.pk]
    assert board["dependencies"] == [[b.pk, a.pk]]
    assert board["order"] == [a.pk]
    assert board["run_gate"]["allowed"] is True
    viewer = as_role("viewer")
    assert viewer.delete(f"/api/cards/{b.pk}/dependencies/{a.pk}/").status_code == 403
    assert member.delete(f"/api/cards/{b.pk}/dependencies/{a.pk}/").status_code == 204
    assert member.delete(f"/api/cards/{b.pk}/dependencies/{a.pk}/").status_code == 404
    assert viewer.post(f"/api/cards/{a.pk}/comments/", {"body": "hi"}, format="json").status_code == 403
    posted = member.post(f"/api/cards/{a.pk}/comments/", {"body": "Looks good"}, format="json")
    assert posted.status_code == 201
    listed = viewer.get(f"/api/cards/{a.pk}/comments/").json()["results"]
    assert [(c["body"], c["author"].startswith("member")) for c in listed] == [("Looks good", True)]
    assert member.post(f"/api/cards/{a.pk}/comments/", {"body": "x" * 50_001}, format="json").status_code == 400


def test_roles_fixture_sanity(project: Project) -> None:
    assert ProjectRole.rank("viewer") < ProjectRole.rank("member") < ProjectRole.rank("maintainer")
