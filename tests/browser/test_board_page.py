"""The board page with Django's test client: who may see it and what it hands the page script."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client

from boards.models import Epic, Project, ProjectRole

pytestmark = pytest.mark.django_db


@pytest.fixture
def epics(project: Project) -> list[Epic]:
    return [
        Epic.objects.create(project=project, name="First", rank=1),
        Epic.objects.create(project=project, name="Second", rank=2),
    ]


def client_for(user: AbstractUser) -> Client:
    client = Client()
    client.force_login(user)
    return client


def embedded_config(content: bytes) -> dict[str, object]:
    text = content.decode().split('<script id="board-config" type="application/json">', 1)[1]
    return json.loads(text.split("</script>", 1)[0])


def test_a_viewer_sees_the_board_of_the_first_epic_read_only(
    project: Project, epics: list[Epic], member_of: Callable[..., AbstractUser]
) -> None:
    client = client_for(member_of(project, ProjectRole.VIEWER))
    response = client.get(f"/projects/{project.pk}/board/")
    assert response.status_code == 200
    assert b"/static/orket/board/main.js" in response.content
    assert b"/static/orket/board.css" in response.content
    config = embedded_config(response.content)
    assert config["epic"] == epics[0].pk and config["canAct"] is False
    assert config["ws"] == f"/ws/projects/{project.pk}/"
    assert config["transitions"]["ready"] == ["in_progress", "canceled"]
    assert config["transitions"]["done"] == []
    assert [reason["name"] for reason in config["waitReasons"]] == ["resource", "dependency", "review", "input"]
    assert b'id="run-epic"' not in response.content and b'id="new-card"' not in response.content


def test_a_member_may_act_and_choose_the_epic_and_filters_come_from_the_url(
    project: Project, epics: list[Epic], member_of: Callable[..., AbstractUser]
) -> None:
    client = client_for(member_of(project, ProjectRole.MEMBER))
    response = client.get(f"/projects/{project.pk}/board/", {"epic": epics[1].pk, "seat": "coder", "q": "<b>x</b>"})
    assert response.status_code == 200
    config = embedded_config(response.content)
    assert config["epic"] == epics[1].pk and config["canAct"] is True
    assert config["filters"]["seat"] == "coder" and config["filters"]["q"] == "<b>x</b>"
    assert b"<b>x</b>" not in response.content  # escaped everywhere
    assert b'id="run-epic"' in response.content
    assert client.get(f"/projects/{project.pk}/board/", {"epic": "999999"}).status_code == 404


def test_a_project_without_epics_says_so(project: Project, member_of: Callable[..., AbstractUser]) -> None:
    response = client_for(member_of(project, ProjectRole.VIEWER)).get(f"/projects/{project.pk}/board/")
    assert response.status_code == 200
    assert b"no epics yet" in response.content


def test_non_members_and_missing_projects_get_404(
    project: Project, epics: list[Epic], member_of: Callable[..., AbstractUser]
) -> None:
    other = Project.objects.create(name="Other", slug="other")
    client = client_for(member_of(other, ProjectRole.MAINTAINER))
    assert client.get(f"/projects/{project.pk}/board/").status_code == 404
    assert client.get("/projects/999999/board/").status_code == 404


def test_anonymous_visitors_are_sent_to_the_login_page(project: Project, epics: list[Epic]) -> None:
    response = Client().get(f"/projects/{project.pk}/board/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_lanes_and_canceled_come_from_the_url_and_the_page_knows_its_apis(
    project: Project, epics: list[Epic], member_of: Callable[..., AbstractUser]
) -> None:
    client = client_for(member_of(project, ProjectRole.VIEWER))
    plain = client.get(f"/projects/{project.pk}/board/")
    config = embedded_config(plain.content)
    assert config["view"] == {"lanes": "", "canceled": ""}
    assert config["api"]["projectBoard"] == f"/api/projects/{project.pk}/board/"
    assert config["api"]["teams"] == "/api/teams/"
    assert [epic["team"] for epic in config["epics"]] == ["standard", "standard"]
    assert b'id="lanes-toggle" value="epic">' in plain.content
    chosen = client.get(f"/projects/{project.pk}/board/", {"lanes": "epic", "canceled": "1"})
    assert embedded_config(chosen.content)["view"] == {"lanes": "epic", "canceled": "1"}
    assert b'id="lanes-toggle" value="epic" checked>' in chosen.content
    assert b'id="show-canceled" value="1" checked>' in chosen.content
    odd = client.get(f"/projects/{project.pk}/board/", {"lanes": "<script>", "canceled": "maybe"})
    assert embedded_config(odd.content)["view"] == {"lanes": "", "canceled": ""}
