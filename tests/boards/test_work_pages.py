"""New project, New epic, editing and archiving from the browser pages (Django's test client, with
CSRF checks on), and what a viewer is shown and refused, in the pages and in the API."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client

from agents.models import EpicPlan
from boards import services
from boards.actors import Actor
from boards.models import Epic, Membership, Project, ProjectRole, Rock
from orket_site.seed import seed_first_run

pytestmark = pytest.mark.django_db


def _client(user: AbstractUser) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _post(client: Client, url: str, data: dict[str, str]) -> object:
    """A form post as the browser sends it: the page's CSRF token from the cookie it set."""
    client.get("/")
    return client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def test_a_signed_in_user_creates_a_project_and_becomes_its_maintainer(make_user: Callable[..., AbstractUser]) -> None:
    user = make_user("ada")
    client = _client(user)
    home = client.get("/")
    assert b'id="new-project-form"' in home.content
    response = _post(client, "/projects/new/", {"name": "Payroll", "description": "Pay people on time."})
    project = Project.objects.get(name="Payroll")
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.pk}/board/"
    assert Membership.objects.get(project=project, user=user).role == ProjectRole.MAINTAINER
    refused = _post(client, "/projects/new/", {"name": "  ", "description": ""})
    assert refused.status_code == 400 and b'id="project-error-name"' in refused.content
    assert Project.objects.count() == 1
    no_token = Client(enforce_csrf_checks=True)
    no_token.force_login(user)
    assert no_token.post("/projects/new/", {"name": "Sneaky"}).status_code == 403


def test_members_create_edit_and_archive_epics(project: Project, member_of: Callable[..., AbstractUser]) -> None:
    member = member_of(project, ProjectRole.MEMBER)
    rock = Rock.objects.create(project=project, name="Q1")
    client = _client(member)
    created = _post(
        client,
        f"/projects/{project.pk}/epics/new/",
        {"name": "Invoices", "description": "Send invoices.", "rock": str(rock.pk)},
    )
    epic = Epic.objects.get(name="Invoices")
    assert created.status_code == 302 and epic.rock == rock and epic.description == "Send invoices."
    blank = _post(client, f"/projects/{project.pk}/epics/new/", {"name": "", "description": ""})
    assert blank.status_code == 400 and b'id="error-name"' in blank.content

    edited = _post(client, f"/epics/{epic.pk}/edit/", {"name": "Invoicing", "description": "Send them.", "rock": ""})
    epic.refresh_from_db()
    assert edited.status_code == 302 and (epic.name, epic.description, epic.rock) == ("Invoicing", "Send them.", None)

    board = client.get(f"/projects/{project.pk}/board/")
    assert [item.pk for item in board.context["epics"]] == [epic.pk]
    _post(client, f"/epics/{epic.pk}/edit/", {"action": "archive"})
    epic.refresh_from_db()
    assert epic.archived_at is not None
    assert client.get(f"/projects/{project.pk}/board/").context["epics"] == []
    api = Client()
    api.force_login(member)
    assert api.get(f"/api/epics/?project={project.pk}").json()["results"] == []
    assert [row["id"] for row in api.get(f"/api/epics/?project={project.pk}&archived=1").json()["results"]] == [epic.pk]
    assert api.get(f"/api/projects/{project.pk}/board/").json()["epics"] == []  # no swimlane either
    _post(client, f"/epics/{epic.pk}/edit/", {"action": "restore"})
    epic.refresh_from_db()
    assert epic.archived_at is None


def test_maintainers_archive_projects_and_the_list_can_show_them(
    project: Project, member_of: Callable[..., AbstractUser]
) -> None:
    maintainer = member_of(project, ProjectRole.MAINTAINER)
    client = _client(maintainer)
    response = _post(client, f"/projects/{project.pk}/settings/", {"section": "archive", "archived": "1"})
    assert response.status_code == 302
    assert b"Apollo" not in client.get("/").content
    assert b"Apollo" in client.get("/?archived=1").content
    api = Client()
    api.force_login(maintainer)
    assert api.get("/api/projects/").json()["results"] == []
    restored = api.post(f"/api/projects/{project.pk}/archive/", {"archived": False}, content_type="application/json")
    assert restored.status_code == 200 and restored.json()["archived_at"] is None


def test_a_viewer_sees_no_new_plan_or_run_controls_and_the_api_refuses_them(
    settings, tmp_path, project: Project, member_of: Callable[..., AbstractUser]
) -> None:
    settings.DATA_DIR = tmp_path
    seed_first_run()
    maintainer = member_of(project, ProjectRole.MAINTAINER)
    epic = services.epic_create(
        project=project, actor=Actor.for_user(maintainer), name="Reports", description="- Daily report", team="standard"
    )
    plan = EpicPlan.objects.create(project=project, epic=epic, status="draft", document={"cards": []})
    viewer = member_of(project, ProjectRole.VIEWER)
    client = _client(viewer)

    board = client.get(f"/projects/{project.pk}/board/?epic={epic.pk}").content
    for control in (b'id="new-epic"', b'id="edit-epic"', b'id="plan-epic"', b'id="run-epic"', b'id="new-card"'):
        assert control not in board, control
    epic_page = client.get(f"/epics/{epic.pk}/").content
    assert b'id="epic-plan-link"' not in epic_page and b'id="epic-edit-link"' not in epic_page
    plan_page = client.get(f"/epics/{epic.pk}/plan/")
    assert plan_page.status_code == 200 and b'id="plan-request"' not in plan_page.content
    draft = client.get(f"/plans/{plan.pk}/")
    assert draft.status_code == 200 and b'id="plan-accept"' not in draft.content

    assert client.get(f"/projects/{project.pk}/epics/new/").status_code == 403
    assert _post(client, f"/projects/{project.pk}/epics/new/", {"name": "Nope"}).status_code == 403
    assert _post(client, f"/epics/{epic.pk}/edit/", {"action": "archive"}).status_code == 403
    assert _post(client, f"/epics/{epic.pk}/plan/", {}).status_code == 403

    api = Client()
    api.force_login(viewer)
    refused = {
        "new epic": api.post("/api/epics/", {"project": project.pk, "name": "Nope"}, content_type="application/json"),
        "edit epic": api.patch(f"/api/epics/{epic.pk}/", {"name": "Nope"}, content_type="application/json"),
        "archive epic": api.post(f"/api/epics/{epic.pk}/archive/", {"archived": True}, content_type="application/json"),
        "archive project": api.post(
            f"/api/projects/{project.pk}/archive/", {"archived": True}, content_type="application/json"
        ),
        "plan": api.post(f"/api/epics/{epic.pk}/plans/", {}, content_type="application/json"),
        "edit plan": api.patch(f"/api/plans/{plan.pk}/", {"document": {"cards": []}}, content_type="application/json"),
        "accept plan": api.post(f"/api/plans/{plan.pk}/accept/", {}, content_type="application/json"),
        "discard plan": api.post(f"/api/plans/{plan.pk}/discard/", {}, content_type="application/json"),
        "run": api.post(f"/api/epics/{epic.pk}/runs/", {}, content_type="application/json"),
    }
    assert {name: response.status_code for name, response in refused.items()} == dict.fromkeys(refused, 403)
    epic.refresh_from_db()
    assert (
        epic.name == "Reports" and epic.archived_at is None and not EpicPlan.objects.filter(status="drafting").exists()
    )
    assert api.get(f"/api/plans/{plan.pk}/").status_code == 200
    outsider = member_of(Project.objects.create(name="Other", slug="other"), ProjectRole.MAINTAINER)
    api.force_login(outsider)
    assert api.get(f"/api/plans/{plan.pk}/").status_code == 404
    assert api.post(f"/api/epics/{epic.pk}/plans/", {}, content_type="application/json").status_code == 404
