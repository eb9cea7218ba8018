"""The board endpoints the board page loads: the epic board and the project board (swimlanes).
Both answer in a fixed number of queries whatever the number of cards."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from boards import services
from boards.actors import Actor
from boards.models import Card, Epic, Project, ProjectRole

pytestmark = pytest.mark.django_db


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def queries(client: APIClient, url: str) -> tuple[int, dict[str, Any]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured), response.json()


def test_board_endpoints_use_a_fixed_number_of_queries(
    project: Project, epic: Epic, maintainer: Any, make_card: Callable[..., Card]
) -> None:
    actor = Actor.for_user(maintainer)
    other = services.epic_create(project=project, actor=actor, name="Other")
    cards = [make_card(f"Card {n}") for n in range(3)]
    services.dependency_add(card=cards[1], depends_on=cards[0], actor=actor)
    client = client_for(maintainer)
    small_epic, _ = queries(client, f"/api/epics/{epic.pk}/board/")
    small_project, _ = queries(client, f"/api/projects/{project.pk}/board/")
    for n in range(40):
        made = make_card(f"More {n}", target_epic=other if n % 2 else epic)
        services.dependency_add(card=made, depends_on=cards[0], actor=actor)
    large_epic, board = queries(client, f"/api/epics/{epic.pk}/board/")
    large_project, lanes = queries(client, f"/api/projects/{project.pk}/board/")
    assert (small_epic, small_project) == (large_epic, large_project)
    assert len(board["cards"]) == 23 and len(lanes["cards"]) == 43
    assert [item["name"] for item in lanes["epics"]] == ["Checkout", "Other"]
    assert {card["epic"] for card in lanes["cards"]} == {epic.pk, other.pk}
    assert [cards[1].pk, cards[0].pk] in lanes["dependencies"]
    first = board["cards"][0]
    assert {"id", "epic", "title", "status", "rank", "pull_request", "review_cycle"} <= set(first)


def test_the_project_board_is_for_members_of_the_project(
    project: Project, epic: Epic, member_of: Callable[..., Any], make_user: Callable[..., Any]
) -> None:
    viewer = client_for(member_of(project, ProjectRole.VIEWER))
    assert viewer.get(f"/api/projects/{project.pk}/board/").status_code == 200
    assert client_for(make_user("stranger")).get(f"/api/projects/{project.pk}/board/").status_code == 404
    assert APIClient().get(f"/api/projects/{project.pk}/board/").status_code in (401, 403)


def test_board_answers_are_compressed_when_the_client_accepts_gzip(
    project: Project, epic: Epic, maintainer: Any, make_card: Callable[..., Card]
) -> None:
    for n in range(30):
        make_card(f"A card with a longer title, number {n}")
    client = client_for(maintainer)
    for url in (f"/api/epics/{epic.pk}/board/", f"/api/projects/{project.pk}/board/"):
        plain = client.get(url)
        packed = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
        assert plain.status_code == packed.status_code == 200
        assert "Content-Encoding" not in plain and packed["Content-Encoding"] == "gzip"
        assert len(packed.content) < len(plain.content) / 3
        assert json.loads(gzip.decompress(packed.content)) == plain.json()
