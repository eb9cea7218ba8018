"""No secret appears in logs, pages, API answers or exports: the Gitea API token, the webhook secret
(after the one answer that shows it), a model server's API key, SECRET_KEY and passwords.

Everything a maintainer can open about a linked project with a run is fetched, a signed webhook is
delivered and processed, and every answer and every log record is searched for the secret values."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import AbstractUser
from django.test import Client

from agents.gitea.models import GiteaLink, WebhookDelivery
from agents.gitea.services import delivery_process
from agents.models import ModelProfile, Run, RunEvent, Team
from agents.services import seed_standard_configuration
from boards.models import Card, Epic, Project, ProjectRole
from tests.gitea.fake_gitea import signed_headers

pytestmark = pytest.mark.django_db

GITEA_TOKEN = "gitea-token-b7f3e0c9a1d24e5f"
MODEL_KEY = "sk-model-key-9d8c7b6a5f4e3d2c"
PASSWORD = "user password 7c1e9f"
FIXTURE = Path(__file__).resolve().parent / "gitea" / "payloads" / "HookPullRequest.json"


def body_text(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def test_secrets_stay_out_of_pages_answers_exports_and_logs(
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    make_user: Callable[..., AbstractUser],
) -> None:
    settings.DATA_DIR = tmp_path
    monkeypatch.setenv("ORKET_SECRET_TEST_MODEL_KEY", MODEL_KEY)
    seed_standard_configuration()
    maintainer = make_user("maintainer", password=PASSWORD)
    project = Project.objects.create(name="Linked", slug="linked")
    project.memberships.create(user=maintainer, role=ProjectRole.MAINTAINER)
    epic = Epic.objects.create(project=project, name="Epic")
    card = Card.objects.create(project=project, epic=epic, title="Card")
    profile = ModelProfile.objects.get(name="scripted-demo")
    profile.api_key_env = "ORKET_SECRET_TEST_MODEL_KEY"
    profile.save()
    run = Run.objects.create(
        project=project, epic=epic, team=Team.objects.order_by("pk").first(), model_profile=profile, last_seq=1
    )
    RunEvent.objects.create(run=run, seq=1, kind="text", data={"text": "hello"})

    client = Client()
    client.force_login(maintainer)
    caplog.set_level(logging.DEBUG)
    saved = client.put(
        f"/api/projects/{project.pk}/gitea/",
        {
            "base_url": "http://127.0.0.1:9",
            "owner": "team",
            "repo": "app",
            "token": GITEA_TOKEN,
            "regenerate_secret": True,
        },
        content_type="application/json",
    )
    assert saved.status_code == 200, saved.content
    webhook_secret = saved.json()["webhook_secret"]  # shown once, in this answer only
    link = GiteaLink.objects.get(project=project)
    assert GITEA_TOKEN not in link.token_encrypted and webhook_secret not in link.webhook_secret_encrypted

    body = FIXTURE.read_bytes()
    headers = signed_headers(webhook_secret, body, event="pull_request")
    meta = {
        f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items() if name != "Content-Type"
    }
    hook = Client().post(f"/hooks/gitea/{project.pk}/", body, content_type="application/json", **meta)
    assert hook.status_code in (200, 202), hook.content
    for delivery in WebhookDelivery.objects.filter(project=project):
        delivery_process(delivery_id=delivery.pk, force=True)

    paths = [
        f"/api/projects/{project.pk}/gitea/",
        f"/api/projects/{project.pk}/gitea/deliveries/",
        f"/projects/{project.pk}/settings/gitea/",
        f"/projects/{project.pk}/gitea/deliveries/",
        f"/projects/{project.pk}/settings/",
        f"/projects/{project.pk}/board/",
        f"/projects/{project.pk}/runs/",
        f"/runs/{run.pk}/",
        f"/api/runs/{run.pk}/",
        f"/api/runs/{run.pk}/export/",
        f"/api/runs/{run.pk}/turns/",
        f"/api/epics/{epic.pk}/export/",
        f"/api/cards/{card.pk}/",
        f"/api/cards/{card.pk}/prompt/?role=coder",
        "/api/model-profiles/",
        f"/api/model-profiles/{profile.pk}/",
        "/api/teams/",
        "/api/projects/",
        "/",
    ]
    answers = {}
    for path in paths:
        response = client.get(path)
        assert response.status_code < 500, (path, response.status_code)
        answers[path] = body_text(response)

    secrets = {
        "Gitea token": GITEA_TOKEN,
        "webhook secret": webhook_secret,
        "model API key": MODEL_KEY,
        "SECRET_KEY": django_settings.SECRET_KEY,
        "password": PASSWORD,
    }
    logs = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    for name, value in secrets.items():
        for path, text in answers.items():
            assert value not in text, f"the {name} appears in {path}"
        assert value not in logs, f"the {name} appears in the logs"
    assert answers[f"/api/projects/{project.pk}/gitea/"].count("has_token") == 1
