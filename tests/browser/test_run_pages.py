"""The run pages (run view, replay, run history) with Django's test client: who may see them."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client

from agents.models import ModelProfile, Run, Team
from boards.models import Epic, Project, ProjectRole
from orket_site.seed import seed_first_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_run(settings, tmp_path) -> Run:
    settings.DATA_DIR = tmp_path
    seed_first_run()
    epic = Epic.objects.get(project__slug="demo")
    return Run.objects.create(
        project=epic.project,
        epic=epic,
        team=Team.objects.order_by("pk").first(),
        model_profile=ModelProfile.objects.get(name="scripted-demo"),
    )


def pages(run: Run) -> list[str]:
    return [f"/runs/{run.pk}/", f"/runs/{run.pk}/replay/", f"/projects/{run.project_id}/runs/"]


def client_for(user: AbstractUser) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_viewer_sees_the_run_view_replay_and_history(demo_run: Run, member_of: Callable[..., AbstractUser]) -> None:
    client = client_for(member_of(demo_run.project, ProjectRole.VIEWER))
    for url in pages(demo_run):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b'<link rel="stylesheet" href="/static/orket/run.css">' in response.content


def test_the_run_view_hands_the_script_its_run_and_shows_a_scripted_model(
    demo_run: Run, member_of: Callable[..., AbstractUser]
) -> None:
    viewer = client_for(member_of(demo_run.project, ProjectRole.VIEWER))
    response = viewer.get(f"/runs/{demo_run.pk}/")
    config = response.context["config"]
    assert config["run"] == demo_run.pk and config["mode"] == "live"
    assert config["ws"] == f"/ws/runs/{demo_run.pk}/"
    assert config["api"]["events"] == f"/api/runs/{demo_run.pk}/events/"
    assert config["canCancel"] is False
    assert response.context["model"] == "scripted"
    assert b'id="run-cancel"' not in response.content
    assert b"/static/vendor/chartjs/chart.umd.min.js" in response.content
    embedded = response.content.decode().split('<script id="run-config" type="application/json">', 1)[1]
    assert json.loads(embedded.split("</script>", 1)[0])["run"] == demo_run.pk

    member = client_for(member_of(demo_run.project, ProjectRole.MEMBER))
    response = member.get(f"/runs/{demo_run.pk}/")
    assert response.context["config"]["canCancel"] is True
    assert b'id="run-cancel"' in response.content
    replay = member.get(f"/runs/{demo_run.pk}/replay/")
    assert replay.context["config"]["mode"] == "replay" and b'id="replay-file"' in replay.content


def test_pages_answer_404_to_a_non_member(demo_run: Run, member_of: Callable[..., AbstractUser]) -> None:
    other = Project.objects.create(name="Other", slug="other")
    client = client_for(member_of(other, ProjectRole.MAINTAINER))
    for url in pages(demo_run):
        assert client.get(url).status_code == 404, url


def test_missing_runs_and_projects_answer_404(demo_run: Run, member_of: Callable[..., AbstractUser]) -> None:
    client = client_for(member_of(demo_run.project, ProjectRole.VIEWER))
    assert client.get("/runs/999999/").status_code == 404
    assert client.get("/runs/999999/replay/").status_code == 404
    assert client.get("/projects/999999/runs/").status_code == 404


def test_anonymous_visitors_are_sent_to_the_login_page(demo_run: Run) -> None:
    client = Client()
    for url in pages(demo_run):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_history_lists_runs_and_filters_by_epic(demo_run: Run, member_of: Callable[..., AbstractUser]) -> None:
    project = demo_run.project
    other_epic = Epic.objects.create(project=project, name="Second epic")
    second = Run.objects.create(
        project=project, epic=other_epic, team=demo_run.team, model_profile=demo_run.model_profile
    )
    client = client_for(member_of(project, ProjectRole.VIEWER))

    everything = client.get(f"/projects/{project.pk}/runs/")
    shown = [row["run"].pk for row in everything.context["rows"]]
    assert shown == [second.pk, demo_run.pk]
    assert f'href="/runs/{demo_run.pk}/replay/"'.encode() in everything.content

    filtered = client.get(f"/projects/{project.pk}/runs/", {"epic": demo_run.epic_id})
    assert [row["run"].pk for row in filtered.context["rows"]] == [demo_run.pk]
    assert filtered.context["rows"][0]["cards_total"] == demo_run.epic.cards.count()
    assert client.get(f"/projects/{project.pk}/runs/", {"epic": "nope"}).status_code == 404
