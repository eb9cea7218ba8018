"""Project pages (settings, epic, import) with Django's test client: who may see and change what."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from agents.models import ModelProfile, ProjectAgentSettings
from boards import services
from boards.actors import Actor
from boards.models import Card, CardDependency, CardHistory, Epic, Membership, Project, ProjectRole
from boards.settings_pages import IMPORT_MAX_BYTES, epic_flow

pytestmark = pytest.mark.django_db

EPIC_DOC: dict[str, Any] = {
    "name": "Checkout",
    "description": "Let people pay.",
    "stories": [
        {"summary": "Model the cart", "seat": "lead_architect", "priority": "high"},
        {"id": "pay", "summary": "Take payment", "seat": "coder", "depends_on": ["Model the cart"]},
    ],
}


def client_for(user: AbstractUser) -> Client:
    client = Client()
    client.force_login(user)
    return client


def counts() -> tuple[int, int, int, int]:
    return Epic.objects.count(), Card.objects.count(), CardDependency.objects.count(), CardHistory.objects.count()


@pytest.fixture
def epic(project: Project) -> Epic:
    return services.epic_import(project=project, data=EPIC_DOC, actor=Actor.orket("test"))


def urls(project: Project, epic: Epic) -> dict[str, str]:
    return {
        "settings": f"/projects/{project.pk}/settings/",
        "epic": f"/epics/{epic.pk}/",
        "import": f"/projects/{project.pk}/import/",
    }


# --- who may see what -------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page(project: Project, epic: Epic) -> None:
    for url in urls(project, epic).values():
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_non_members_get_404(project: Project, epic: Epic, member_of: Callable[..., AbstractUser]) -> None:
    other = Project.objects.create(name="Other", slug="other")
    client = client_for(member_of(other, ProjectRole.MAINTAINER))
    for url in urls(project, epic).values():
        assert client.get(url).status_code == 404, url
        assert client.post(url, {"section": "project", "name": "x"}).status_code == 404, url
    assert client.get("/epics/999999/").status_code == 404


def test_a_viewer_reads_settings_and_epic_but_may_not_import_or_change(
    project: Project, epic: Epic, member_of: Callable[..., AbstractUser]
) -> None:
    client = client_for(member_of(project, ProjectRole.VIEWER))
    page = client.get(f"/projects/{project.pk}/settings/")
    assert page.status_code == 200
    assert page.context["can_edit"] is False
    assert b'name="section"' not in page.content and b"read-only" in page.content
    assert f'href="/projects/{project.pk}/settings/gitea/"'.encode() in page.content
    assert client.get(f"/epics/{epic.pk}/").status_code == 200

    refused = client.post(f"/projects/{project.pk}/settings/", {"section": "project", "name": "Renamed"})
    assert refused.status_code == 403
    assert b"needs the maintainer role" in refused.content
    project.refresh_from_db()
    assert project.name == "Apollo"

    before = counts()
    forbidden = client.get(f"/projects/{project.pk}/import/")
    assert forbidden.status_code == 403 and b"needs the member role" in forbidden.content
    assert client.post(f"/projects/{project.pk}/import/", {"text": json.dumps(EPIC_DOC)}).status_code == 403
    assert counts() == before


def test_a_member_sees_settings_read_only_and_may_import(
    project: Project, epic: Epic, member_of: Callable[..., AbstractUser]
) -> None:
    client = client_for(member_of(project, ProjectRole.MEMBER))
    page = client.get(f"/projects/{project.pk}/settings/")
    assert page.status_code == 200 and page.context["can_edit"] is False
    assert client.post(f"/projects/{project.pk}/settings/", {"section": "wip", "wip_ready": "3"}).status_code == 403
    project.refresh_from_db()
    assert project.wip_limits == {}
    response = client.get(f"/projects/{project.pk}/import/")
    assert response.status_code == 200
    assert b'<label for="import-file">' in response.content and b'<label for="import-text">' in response.content


def test_a_maintainer_gets_the_editable_settings_page(project: Project, member_of: Callable[..., AbstractUser]) -> None:
    ModelProfile.objects.create(
        name="local-qwen", provider="ollama", base_url="http://127.0.0.1:11434", model="qwen2.5-coder:7b"
    )
    client = client_for(member_of(project, ProjectRole.MAINTAINER))
    page = client.get(f"/projects/{project.pk}/settings/")
    assert page.status_code == 200 and page.context["can_edit"] is True
    body = page.content.decode()
    for control in (
        "project-name",
        "project-description",
        "member-username",
        "member-new-role",
        "architecture-governance",
        "complexity-threshold",
        "wip-ready",
        "default-profile",
    ):
        assert f'<label for="{control}"' in body or f'<label class="check" for="{control}"' in body, control
    assert "Automatic: Ollama when it answers, else scripted" in body and "local-qwen" in body
    assert "csrfmiddlewaretoken" in body


# --- settings changes -------------------------------------------------------------------------


def post(client: Client, project: Project, data: dict[str, Any], follow: bool = False) -> Any:
    return client.post(f"/projects/{project.pk}/settings/", data, follow=follow)


def test_settings_changes_persist_and_redirect(
    project: Project, member_of: Callable[..., AbstractUser], make_user: Callable[..., AbstractUser]
) -> None:
    maintainer = member_of(project, ProjectRole.MAINTAINER)
    client = client_for(maintainer)
    profile = ModelProfile.objects.create(
        name="local-qwen", provider="ollama", base_url="http://127.0.0.1:11434", model="qwen2.5-coder:7b"
    )

    response = post(client, project, {"section": "project", "name": "Apollo 11", "description": "To the moon."})
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.pk}/settings/#project"
    response = post(
        client, project, {"section": "governance", "architecture_governance": "on", "complexity_threshold": "12"}
    )
    assert response.status_code == 302
    response = post(
        client, project, {"section": "wip", "wip_in_progress": "4", "wip_code_review": "2", "wip_ready": ""}
    )
    assert response.status_code == 302
    response = post(client, project, {"section": "profile", "profile": str(profile.pk)}, follow=True)
    assert response.status_code == 200 and b"The default model profile is now local-qwen." in response.content

    project.refresh_from_db()
    assert project.name == "Apollo 11" and project.description == "To the moon."
    assert project.architecture_governance is True and project.complexity_threshold == 12
    assert project.wip_limits == {"in_progress": 4, "code_review": 2}
    assert ProjectAgentSettings.objects.get(project=project).default_model_profile == profile

    assert post(client, project, {"section": "profile", "profile": ""}).status_code == 302
    assert ProjectAgentSettings.objects.get(project=project).default_model_profile is None
    assert post(client, project, {"section": "governance", "complexity_threshold": "12"}).status_code == 302
    project.refresh_from_db()
    assert project.architecture_governance is False


def test_members_are_added_changed_and_removed(
    project: Project, member_of: Callable[..., AbstractUser], make_user: Callable[..., AbstractUser]
) -> None:
    client = client_for(member_of(project, ProjectRole.MAINTAINER))
    alice = make_user("alice")
    assert post(client, project, {"section": "member_add", "username": "alice", "role": "viewer"}).status_code == 302
    assert Membership.objects.get(project=project, user=alice).role == "viewer"
    response = post(client, project, {"section": "member_role", "user_id": alice.pk, "role": "maintainer"})
    assert response.status_code == 302
    assert Membership.objects.get(project=project, user=alice).role == "maintainer"
    assert post(client, project, {"section": "member_remove", "user_id": alice.pk}).status_code == 302
    assert not Membership.objects.filter(project=project, user=alice).exists()

    other = member_of(project, ProjectRole.MAINTAINER)
    leaving = client_for(other)
    assert post(leaving, project, {"section": "member_remove", "user_id": other.pk})["Location"] == "/"
    assert leaving.get(f"/projects/{project.pk}/settings/").status_code == 404

    missing = post(client, project, {"section": "member_add", "username": "nobody", "role": "member"})
    assert missing.status_code == 400 and b"No active user named &#x27;nobody&#x27;." in missing.content
    assert b'value="nobody"' in missing.content


def test_the_last_maintainer_cannot_step_down_or_be_removed(
    project: Project, member_of: Callable[..., AbstractUser]
) -> None:
    maintainer = member_of(project, ProjectRole.MAINTAINER)
    client = client_for(maintainer)
    demote = post(client, project, {"section": "member_role", "user_id": maintainer.pk, "role": "member"})
    assert demote.status_code == 400
    assert b"The project must keep at least one maintainer." in demote.content
    remove = post(client, project, {"section": "member_remove", "user_id": maintainer.pk})
    assert remove.status_code == 400
    assert b"The project must keep at least one maintainer." in remove.content
    assert Membership.objects.get(project=project, user=maintainer).role == ProjectRole.MAINTAINER


def test_bad_settings_re_render_with_sentences_and_change_nothing(
    project: Project, member_of: Callable[..., AbstractUser]
) -> None:
    client = client_for(member_of(project, ProjectRole.MAINTAINER))
    response = post(client, project, {"section": "governance", "complexity_threshold": "0"})
    assert response.status_code == 400
    assert response.context["errors"]["governance"] == [
        "Complexity threshold: Ensure this value is greater than or equal to 1."
    ]
    response = post(client, project, {"section": "wip", "wip_ready": "-2", "wip_done": "3"})
    assert response.status_code == 400 and "WIP limit for Ready" in response.context["errors"]["wip"][0]
    response = post(client, project, {"section": "project", "name": "   "})
    assert response.status_code == 400
    response = post(client, project, {"section": "profile", "profile": "987654"})
    assert response.status_code == 400
    response = post(client, project, {"section": "something"})
    assert response.status_code == 400
    project.refresh_from_db()
    assert (project.name, project.complexity_threshold, project.wip_limits) == ("Apollo", 7, {})
    assert not ProjectAgentSettings.objects.filter(project=project).exists()


# --- import -----------------------------------------------------------------------------------


def test_import_from_a_file_redirects_to_the_new_epic(project: Project, member_of: Callable[..., AbstractUser]) -> None:
    user = member_of(project, ProjectRole.MEMBER)
    client = client_for(user)
    upload = SimpleUploadedFile("epic.json", json.dumps(EPIC_DOC).encode(), content_type="application/json")
    response = client.post(f"/projects/{project.pk}/import/", {"file": upload})
    epic = Epic.objects.get(project=project, name="Checkout")
    assert response.status_code == 302 and response["Location"] == f"/epics/{epic.pk}/"
    assert Card.objects.filter(epic=epic).count() == 2
    assert CardHistory.objects.filter(epic=epic, actor_user=user).exists()
    page = client.get(response["Location"])
    assert b"The epic Checkout was imported." in page.content


def test_import_from_pasted_text(project: Project, member_of: Callable[..., AbstractUser]) -> None:
    client = client_for(member_of(project, ProjectRole.MEMBER))
    response = client.post(f"/projects/{project.pk}/import/", {"text": json.dumps(EPIC_DOC)})
    assert response.status_code == 302
    assert Epic.objects.filter(project=project, name="Checkout").count() == 1


def test_import_failure_lists_every_problem_with_its_path_and_writes_nothing(
    project: Project, member_of: Callable[..., AbstractUser]
) -> None:
    client = client_for(member_of(project, ProjectRole.MEMBER))
    bad = {
        "name": "",
        "stories": [{"summary": "A", "priority": "urgent"}, {"summary": "B", "depends_on": ["nope"], "colour": 1}],
    }
    before = counts()
    response = client.post(f"/projects/{project.pk}/import/", {"text": json.dumps(bad)})
    assert response.status_code == 400
    problems = response.context["problems"]
    assert len(problems) >= 4
    paths = {problem["path"] for problem in problems}
    assert "name" in paths
    body = response.content.decode()
    for problem in problems:
        assert f"<code>{problem['path']}</code>" in body
    assert "Nothing was written." in body
    assert counts() == before


def test_import_refuses_bad_json_empty_input_and_big_files(
    project: Project, member_of: Callable[..., AbstractUser]
) -> None:
    client = client_for(member_of(project, ProjectRole.MEMBER))
    before = counts()
    url = f"/projects/{project.pk}/import/"
    response = client.post(url, {"text": "{not json"})
    assert response.status_code == 400 and "This is not valid JSON" in response.context["problems"][0]["message"]
    response = client.post(url, {"text": "  "})
    assert response.status_code == 400 and "Choose a JSON file" in response.context["problems"][0]["message"]
    big = SimpleUploadedFile("big.json", b" " * (IMPORT_MAX_BYTES + 1), content_type="application/json")
    response = client.post(url, {"file": big})
    assert response.status_code == 400 and "larger than 1 MiB" in response.context["problems"][0]["message"]
    response = client.post(url, {"text": "[1, 2]"})
    assert response.status_code == 400 and response.context["problems"][0]["path"] == "$"
    assert counts() == before


# --- epic page --------------------------------------------------------------------------------


def test_the_epic_page_shows_progress_cards_and_links(
    project: Project, epic: Epic, member_of: Callable[..., AbstractUser]
) -> None:
    cart, pay = Card.objects.filter(epic=epic).order_by("rank")
    Card.objects.filter(pk=cart.pk).update(status="done")
    client = client_for(member_of(project, ProjectRole.VIEWER))
    response = client.get(f"/epics/{epic.pk}/")
    assert response.status_code == 200
    assert (response.context["done"], response.context["total"], response.context["percent"]) == (1, 2, 50)
    body = response.content.decode()
    assert "1 of 2 cards done (50%)" in body
    assert 'aria-valuenow="1"' in body and 'aria-valuemax="2"' in body
    assert f'href="/projects/{project.pk}/board/?epic={epic.pk}"' in body
    assert f'href="/projects/{project.pk}/runs/?epic={epic.pk}"' in body
    assert f'href="/api/epics/{epic.pk}/export/"' in body
    assert "Take payment" in body and "lead_architect" in body
    pay_row = body.split(f'data-card="{pay.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "Model the cart" in pay_row and "coder" in pay_row
    assert "/static/vendor/chartjs/chart.umd.min.js" in body and "/static/orket/epic.js" in body
    embedded = body.split('<script id="epic-charts" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert json.loads(embedded) == response.context["charts"]


def _history(project: Project, card: Card, to_status: str, when: Any, from_status: str = "") -> None:
    row = CardHistory.objects.create(project=project, card=card, from_status=from_status, to_status=to_status)
    CardHistory.objects.filter(pk=row.pk).update(created_at=when)


def test_the_chart_data_follows_the_card_history(project: Project) -> None:
    epic = Epic.objects.create(project=project, name="Charts")
    a = Card.objects.create(project=project, epic=epic, title="A")
    b = Card.objects.create(project=project, epic=epic, title="B")
    c = Card.objects.create(project=project, epic=epic, title="C")
    start = timezone.now().replace(microsecond=0) - timedelta(days=3)
    _history(project, a, "ready", start)
    _history(project, b, "ready", start)  # same second: one point
    _history(project, c, "ready", start + timedelta(hours=1))
    _history(project, a, "in_progress", start + timedelta(hours=2), "ready")
    _history(project, b, "canceled", start + timedelta(hours=3), "ready")
    _history(project, a, "code_review", start + timedelta(hours=4), "in_progress")
    _history(project, a, "done", start + timedelta(hours=5), "code_review")
    row = CardHistory.objects.create(project=project, card=a, event="edited", changes={"title": ["A", "A!"]})
    CardHistory.objects.filter(pk=row.pk).update(created_at=start + timedelta(hours=6))  # no status: no point

    charts = epic_flow(epic)
    assert len(charts["labels"]) == 6
    assert charts["labels"][0] == start.isoformat()
    assert charts["flow"]["ready"] == [2, 3, 2, 1, 1, 1]
    assert charts["flow"]["in_progress"] == [0, 0, 1, 1, 0, 0]
    assert charts["flow"]["code_review"] == [0, 0, 0, 0, 1, 0]
    assert charts["flow"]["done"] == [0, 0, 0, 0, 0, 1]
    assert charts["flow"]["canceled"] == [0, 0, 0, 1, 1, 1]
    assert charts["burndown"] == [2, 3, 3, 2, 2, 1]
    for index in range(6):
        assert sum(charts["flow"][status][index] for status in charts["statuses"]) == [2, 3, 3, 3, 3, 3][index]


def test_cards_without_history_count_in_their_current_status(project: Project) -> None:
    epic = Epic.objects.create(project=project, name="Quiet")
    Card.objects.create(project=project, epic=epic, title="Old", status="done")
    charts = epic_flow(epic)
    assert charts["flow"]["done"] == [1] and charts["burndown"] == [0]
    later = timezone.now() + timedelta(hours=1)
    carried = epic_flow(epic, until=later)
    assert carried["labels"][-1] == later.replace(microsecond=0).isoformat()
    assert carried["flow"]["done"] == [1, 1] and carried["burndown"] == [0, 0]
    assert epic_flow(Epic.objects.create(project=project, name="Empty"))["labels"] == []
