"""The sandboxes API and page: membership checks like the rest of the API, errors as {detail, code}.
Creation queues the start for a worker, so these need no Docker engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from boards.models import Card, Epic, Project, ProjectRole
from sandboxes import services
from sandboxes.models import Sandbox
from tests.sandboxes.sandbox_apps import write_app

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def local_backend(monkeypatch: pytest.MonkeyPatch, settings, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path / "data"  # workspaces and sandbox folders of this test only
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    monkeypatch.setenv("ORKET_SANDBOX_PORT_RANGE", "23300-23399")


def project_checkout(project: Project) -> Path:
    """The project's main checkout, where the agents write (see services.default_workspace)."""
    return write_app(Path(django_settings.DATA_DIR) / "workspaces" / f"project-{project.pk}" / "repo")


@pytest.fixture
def sandbox(project: Project, tmp_path: Path) -> Sandbox:
    return services.sandbox_create(project=project, workspace=write_app(tmp_path / "ws"))


def test_anonymous_callers_are_refused(api, sandbox: Sandbox) -> None:
    for method, path in [
        ("get", "/api/sandboxes/"),
        ("get", f"/api/sandboxes/{sandbox.pk}/"),
        ("get", f"/api/sandboxes/{sandbox.pk}/logs/"),
        ("post", f"/api/sandboxes/{sandbox.pk}/stop/"),
        ("post", f"/api/sandboxes/{sandbox.pk}/delete/"),
        ("delete", f"/api/sandboxes/{sandbox.pk}/"),
        ("post", "/api/sandboxes/"),
    ]:
        answer = getattr(api, method)(path, {"project": sandbox.project_id}, format="json")
        assert answer.status_code in (401, 403), (method, path)
        assert answer.json()["code"] in ("not_authenticated", "permission_denied")


def test_non_members_see_nothing(api_as, make_user, sandbox: Sandbox) -> None:
    client = api_as(make_user("stranger"))
    assert _items(client.get("/api/sandboxes/")) == []
    for method, path in [
        ("get", f"/api/sandboxes/{sandbox.pk}/"),
        ("get", f"/api/sandboxes/{sandbox.pk}/logs/"),
        ("post", f"/api/sandboxes/{sandbox.pk}/stop/"),
        ("post", f"/api/sandboxes/{sandbox.pk}/delete/"),
        ("delete", f"/api/sandboxes/{sandbox.pk}/"),
    ]:
        answer = getattr(client, method)(path)
        assert answer.status_code == 404, (method, path)
        assert answer.json()["code"] == "not_found"
    answer = client.post("/api/sandboxes/", {"project": sandbox.project_id}, format="json")
    assert answer.status_code == 404 and answer.json() == {"detail": "Project not found.", "code": "not_found"}
    assert Sandbox.objects.get(pk=sandbox.pk).status == "creating"


def _items(answer) -> list:
    data = answer.json()
    return data["results"] if isinstance(data, dict) else data


def test_viewers_read_but_do_not_act(api_as, member_of, sandbox: Sandbox) -> None:
    client = api_as(member_of(sandbox.project, ProjectRole.VIEWER))
    (item,) = _items(client.get("/api/sandboxes/"))
    assert item["id"] == sandbox.pk and item["status"] == "creating" and item["urls"] == sandbox.urls
    assert item["backend"] == "local" and item["isolation"]
    assert "password" not in str(item) and "SECRET_KEY" not in str(item)
    assert client.get(f"/api/sandboxes/{sandbox.pk}/logs/?tail=5").status_code == 200
    answer = client.post(f"/api/sandboxes/{sandbox.pk}/stop/")
    assert answer.status_code == 403 and answer.json()["code"] == "permission_denied"
    assert client.post("/api/sandboxes/", {"project": sandbox.project_id}, format="json").status_code == 403


def test_members_create_stop_and_delete(api_as, member_of, project: Project) -> None:
    project_checkout(project)
    client = api_as(member_of(project, ProjectRole.MEMBER))
    answer = client.post("/api/sandboxes/", {"project": project.pk}, format="json")
    assert answer.status_code == 202, answer.json()
    created = answer.json()
    assert created["status"] == "creating" and created["stack"]["kind"] == "python"
    assert created["urls"]["app"].startswith("http://127.0.0.1:233")

    answer = client.post(f"/api/sandboxes/{created['id']}/stop/")
    assert answer.status_code == 202 and answer.json()["status"] == "stopping"
    answer = client.post(f"/api/sandboxes/{created['id']}/stop/")
    assert answer.status_code == 409 and answer.json()["code"] == "conflict"
    answer = client.post(f"/api/sandboxes/{created['id']}/start/")
    assert answer.status_code == 409 and "Only a stopped sandbox" in answer.json()["detail"]
    services.sandbox_halt(sandbox_id=created["id"])
    answer = client.post(f"/api/sandboxes/{created['id']}/start/")
    assert answer.status_code == 202 and answer.json()["status"] == "creating"

    answer = client.delete(f"/api/sandboxes/{created['id']}/")
    assert answer.status_code == 202 and answer.json()["status"] == "stopping"
    services.sandbox_teardown(sandbox_id=created["id"])
    assert _items(client.get("/api/sandboxes/")) == []  # deleted ones leave the list
    assert _items(client.get("/api/sandboxes/?status=deleted"))[0]["id"] == created["id"]
    answer = client.post(f"/api/sandboxes/{created['id']}/delete/")
    assert answer.status_code == 409


def test_create_for_a_card(api_as, member_of, project: Project, make_user) -> None:
    epic = Epic.objects.create(project=project, name="E")
    card = Card.objects.create(project=project, epic=epic, title="Build it")
    write_app(Path(django_settings.DATA_DIR) / "workspaces" / f"project-{project.pk}" / "cards" / str(card.pk))
    client = api_as(member_of(project, ProjectRole.MEMBER))
    answer = client.post("/api/sandboxes/", {"card": card.pk}, format="json")
    assert answer.status_code == 202, answer.json()
    assert answer.json()["card"] == card.pk and answer.json()["name"].startswith(f"orket-apollo-c{card.pk}-")

    other = Project.objects.create(name="Other", slug="other")
    answer = client.post("/api/sandboxes/", {"card": card.pk, "project": other.pk}, format="json")
    assert answer.status_code == 400
    stranger = api_as(make_user("outsider"))
    assert stranger.post("/api/sandboxes/", {"card": card.pk}, format="json").status_code == 404


def test_errors_are_plain(api_as, member_of, project: Project) -> None:
    client = api_as(member_of(project, ProjectRole.MEMBER))
    answer = client.post("/api/sandboxes/", {"project": project.pk}, format="json")
    assert answer.status_code == 400 and answer.json()["code"] == "no_workspace"
    empty = Path(django_settings.DATA_DIR) / "workspaces" / f"project-{project.pk}" / "repo"
    empty.mkdir(parents=True)
    (empty / "notes.txt").write_text("nothing to run")
    answer = client.post("/api/sandboxes/", {"project": project.pk}, format="json")
    assert answer.status_code == 400 and answer.json()["code"] == "unsupported_stack"
    assert "Nothing to run" in answer.json()["detail"]
    (empty / "requirements.txt").write_text("requests\n")  # Python, but nothing that starts it
    answer = client.post("/api/sandboxes/", {"project": project.pk}, format="json")
    assert answer.status_code == 400 and answer.json()["code"] == "unsupported_stack"
    assert "cannot run in a sandbox" in answer.json()["detail"]
    assert client.post("/api/sandboxes/", {}, format="json").json()["code"] == "invalid"
    answer = client.get("/api/sandboxes/1/logs/?tail=x")
    assert answer.status_code in (400, 404)


def test_too_many_sandboxes(api_as, member_of, project: Project) -> None:
    project_checkout(project)
    services.project_settings(project)
    project.sandbox_settings.max_sandboxes = 1
    project.sandbox_settings.save()
    client = api_as(member_of(project, ProjectRole.MEMBER))
    assert client.post("/api/sandboxes/", {"project": project.pk}, format="json").status_code == 202
    answer = client.post("/api/sandboxes/", {"project": project.pk}, format="json")
    assert answer.status_code == 409 and answer.json()["code"] == "too_many_sandboxes"


def test_the_page(member_of, make_user, sandbox: Sandbox) -> None:
    browser = Client()
    assert browser.get(f"/projects/{sandbox.project_id}/sandboxes/").status_code == 302  # to the login page
    browser.force_login(make_user("nobody-here"))
    assert browser.get(f"/projects/{sandbox.project_id}/sandboxes/").status_code == 404
    browser.force_login(member_of(sandbox.project, ProjectRole.MEMBER))
    page = browser.get(f"/projects/{sandbox.project_id}/sandboxes/")
    assert page.status_code == 200
    html = page.content.decode()
    assert sandbox.name in html and 'data-action="stop"' in html and 'data-action="delete"' in html
    assert "csrftoken" in page.cookies
    browser.force_login(member_of(sandbox.project, ProjectRole.VIEWER))
    html = browser.get(f"/projects/{sandbox.project_id}/sandboxes/").content.decode()
    assert sandbox.name in html and 'data-action="stop"' not in html and 'data-action="logs"' in html
