"""Admin pages render for every work-model table, history is read-only; project settings API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from boards import services
from boards.actors import Actor
from boards.models import Card, CardHistory, Epic, Project

MODELS = ["rock", "epic", "card", "carddependency", "comment", "cardhistory"]


@pytest.fixture
def admin_client_local(make_user: Callable[..., Any]) -> Client:
    client = Client(HTTP_HOST="localhost")
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_admin_pages(
    admin_client_local: Client, epic: Epic, make_card: Callable[..., Card], maintainer: Any, project: Project
) -> None:
    actor = Actor.for_user(maintainer)
    a, b = make_card("A"), make_card("B")
    services.dependency_add(card=b, depends_on=a, actor=actor)
    services.comment_add(card=a, actor=actor, body="hello")
    services.rock_create(project=project, actor=actor, name="Q3")
    for name in MODELS:
        answer = admin_client_local.get(f"/admin/boards/{name}/?q=a")
        assert answer.status_code == 200, name
    assert admin_client_local.get(f"/admin/boards/card/{a.pk}/change/").status_code == 200
    row = CardHistory.objects.first()
    assert row is not None
    assert admin_client_local.get("/admin/boards/cardhistory/add/").status_code == 403
    page = admin_client_local.get(f"/admin/boards/cardhistory/{row.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client_local.post(f"/admin/boards/cardhistory/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert CardHistory.objects.filter(pk=row.pk).exists()


def test_project_settings(project: Project, member_of: Callable[..., Any]) -> None:
    def client(role: str) -> APIClient:
        api = APIClient()
        api.force_authenticate(member_of(project, role))
        return api

    url = f"/api/projects/{project.pk}/settings/"
    assert client("viewer").get(url).json() == {
        "architecture_governance": False,
        "complexity_threshold": 7,
        "wip_limits": {},
        "require_verification": False,
    }
    assert client("member").patch(url, {"complexity_threshold": 3}, format="json").status_code == 403
    assert client("member").patch(url, {"require_verification": True}, format="json").status_code == 403
    maintainer = client("maintainer")
    answer = maintainer.patch(url, {"complexity_threshold": 12, "wip_limits": {"in_progress": 3}}, format="json")
    assert answer.status_code == 200, answer.json()
    assert maintainer.patch(url, {"wip_limits": {"flying": 3}}, format="json").json()["code"] == "bad_wip_limits"
    assert maintainer.patch(url, {"complexity_threshold": 0}, format="json").status_code == 400
    assert maintainer.patch(url, {"require_verification": True}, format="json").status_code == 200
    project.refresh_from_db()
    assert (project.complexity_threshold, project.wip_limits) == (12, {"in_progress": 3})
    assert project.require_verification
