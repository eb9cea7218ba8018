"""The model profile and team pages: staff only for changes, the connection test reported on the page,
deletion refused while in use, project defaults and seat models set through the agents services."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from agents.models import ModelProfile, ProjectAgentSettings, Seat
from boards.models import Membership, Project, ProjectRole
from orket_site.seed import seed_first_run
from tests.agents.fake_llm import FakeLLMServer, ModelServer, closed_port_url, ollama_stream

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(settings: Any, tmp_path: Any) -> Project:
    settings.DATA_DIR = tmp_path
    seed_first_run()
    return Project.objects.get(slug="demo")


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_non_staff_get_403_on_every_profile_page(seeded: Project, make_user: Any) -> None:
    member = make_user("member")
    Membership.objects.create(project=seeded, user=member, role=ProjectRole.MAINTAINER)
    client = signed_in(member)
    profile = ModelProfile.objects.get(name="scripted-demo")
    seat = Seat.objects.first()
    for method, path in (
        ("get", "/settings/models/"),
        ("get", "/settings/models/new/"),
        ("get", f"/settings/models/{profile.pk}/"),
        ("post", "/settings/models/new/"),
        ("post", f"/settings/models/{profile.pk}/delete/"),
        ("post", f"/settings/models/{profile.pk}/test/"),
        ("post", f"/settings/models/projects/{seeded.pk}/default/"),
        ("post", f"/teams/seats/{seat.pk}/model/"),
    ):
        answer = getattr(client, method)(path, {"profile": profile.pk, "name": "x"})
        assert answer.status_code == 403, (method, path, answer.status_code)
    assert not ProjectAgentSettings.objects.filter(default_model_profile=profile).exists()
    assert Seat.objects.get(pk=seat.pk).model_profile_id is None
    teams = client.get("/teams/")
    assert teams.status_code == 200 and b"senior_developer" in teams.content and b"<select" not in teams.content


def test_members_cannot_see_other_projects_settings(seeded: Project, make_user: Any) -> None:
    other = Project.objects.create(name="Hidden", slug="hidden")
    member = make_user("member")
    Membership.objects.create(project=seeded, user=member, role=ProjectRole.MEMBER)
    client = signed_in(member)
    assert client.get(f"/projects/{other.pk}/settings/").status_code == 404
    assert client.get(f"/projects/{seeded.pk}/settings/").status_code == 200
    epic = other.epics.create(name="secret epic")
    assert client.get(f"/api/epics/{epic.pk}/run-options/").status_code == 404


def test_staff_create_test_and_delete_a_profile_in_the_browser(seeded: Project, make_user: Any) -> None:
    client = signed_in(make_user("ops", is_staff=True))
    assert client.get("/settings/models/").status_code == 200
    form = {
        "name": "gpu-box",
        "provider": "ollama",
        "model": "qwen2.5-coder:7b",
        "temperature": "0.2",
        "context_size": "8192",
        "max_tokens": "2048",
        "timeout_seconds": "60",
        "retry_attempts": "1",
        "retry_base_delay": "0",
        "max_steps": "16",
        "turn_seconds": "1800",
    }
    refused = client.post("/settings/models/new/", {**form, "base_url": "http://10.9.8.7:11434"})
    assert refused.status_code == 400 and b"ORKET_OUTBOUND_HOSTS" in refused.content

    chat = ModelServer("ollama", ["qwen2.5-coder:7b"], lambda request: ollama_stream(['{"ok": true}']))
    with FakeLLMServer(responder=chat) as fake:
        created = client.post("/settings/models/new/", {**form, "base_url": fake.base_url})
        assert created.status_code == 302, created.content.decode()[:2000]
        profile = ModelProfile.objects.get(name="gpu-box")
        page = client.post(f"/settings/models/{profile.pk}/test/", follow=True).content.decode()
    assert "gpu-box: reachable. Models: qwen2.5-coder:7b. Model qwen2.5-coder:7b is listed." in page
    assert "Constrained output: ollama_format" in page

    ModelProfile.objects.filter(pk=profile.pk).update(base_url=closed_port_url())
    page = client.post(f"/settings/models/{profile.pk}/test/", follow=True).content.decode()
    assert "gpu-box: not reachable." in page

    default = client.post(f"/settings/models/projects/{seeded.pk}/default/", {"profile": profile.pk}, follow=True)
    assert f"The default model of {seeded.name} is now gpu-box." in default.content.decode()
    assert ProjectAgentSettings.objects.get(project=seeded).default_model_profile == profile
    page = client.post(f"/settings/models/{profile.pk}/delete/", follow=True).content.decode()
    assert "is in use by the default of 1 project(s)" in page
    client.post(f"/settings/models/projects/{seeded.pk}/default/", {"profile": ""})
    client.post(f"/settings/models/{profile.pk}/delete/")
    assert not ModelProfile.objects.filter(name="gpu-box").exists()


def test_staff_choose_a_seat_model_on_the_team_page(seeded: Project, make_user: Any) -> None:
    client = signed_in(make_user("ops", is_staff=True))
    seat = Seat.objects.get(name="senior_developer")
    profile = ModelProfile.objects.get(name="ollama-local")
    page = client.get("/teams/").content.decode()
    assert f'id="seat-{seat.pk}"' in page
    done = client.post(f"/teams/seats/{seat.pk}/model/", {"profile": profile.pk}, follow=True).content.decode()
    assert "Seat standard/senior_developer now uses ollama-local" in done
    assert Seat.objects.get(pk=seat.pk).model_profile == profile
    client.post(f"/teams/seats/{seat.pk}/model/", {"profile": ""})
    assert Seat.objects.get(pk=seat.pk).model_profile is None
