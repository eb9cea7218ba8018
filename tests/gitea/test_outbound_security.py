"""The server sends tokens and keys only where the operator allows (issue 14, items 1, 2 and 10).

A real socket server on 127.0.0.1 stands in for the attacker's server and records every byte it is
sent. A signed-in user creates a project (becoming its maintainer), tries to point the Gitea link at
the listener with a variable that is not marked for secrets or at a host the operator does not
allow, and then every path that pushes or calls Gitea is triggered: the listener receives nothing.
A control test shows the same paths do reach the listener when the configuration is allowed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from agents import engine
from agents.gitea import services
from agents.gitea.client import GiteaError
from agents.gitea.models import GiteaLink, PullRequestLink, WebhookDelivery
from agents.models import ModelProfile, ProjectAgentSettings
from agents.providers import ChatRequest, ProviderError, provider_for
from boards.models import Card, Comment, Project
from orket_site.errors import OrketError
from tests.gitea.fake_gitea import signed_headers
from tests.gitea.support import new_card, seeded_project, to_review

pytestmark = pytest.mark.django_db

SECRET_VALUE = "the-server-secret-value-4f1c9a"
ATTACKER_VALUE = "ORKET_SECRET_GITEA_TOKEN-value-7d2e"
UNMARKED = ["SECRET_KEY", "ORKET_ADMIN_PASSWORD", "DATABASE_URL", "OPENAI_API_KEY", "ORKET_SECRET_", "NO_SUCH_VAR_91"]


class Listener:
    """The attacker's server: accepts connections on 127.0.0.1 and records everything it is sent."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    while b"\r\n\r\n" not in self.received:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        self.received += chunk
                    conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)

    def heard_nothing(self) -> bool:
        return self.connections == 0 and not self.received


@pytest.fixture
def listener() -> Iterator[Listener]:
    attacker = Listener()
    yield attacker
    attacker.close()


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Any) -> None:
    settings.DATA_DIR = tmp_path
    for name in UNMARKED[:4]:
        monkeypatch.setenv(name, SECRET_VALUE)
    monkeypatch.setenv("ORKET_SECRET_GITEA_TOKEN", ATTACKER_VALUE)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def maintainer_project(make_user: Callable[..., AbstractUser]) -> tuple[APIClient, Project]:
    """Any signed-in user creates a project through the API and so becomes its maintainer."""
    seeded_project()  # the standard team and profiles
    user = make_user("mallory")
    client = APIClient()
    client.force_authenticate(user)
    created = client.post("/api/projects/", {"name": "Mine", "slug": "mine"}, format="json")
    assert created.status_code == 201, created.content
    return client, Project.objects.get(pk=created.json()["id"])


def put_link(client: APIClient, project: Project, **fields: Any) -> Any:
    data = {"owner": "o", "repo": "r", **fields}
    return client.put(f"/api/projects/{project.pk}/gitea/", data, format="json")


def card_in_review(project: Project) -> Card:
    ProjectAgentSettings.objects.update_or_create(
        project=project, defaults={"default_model_profile": ModelProfile.objects.get(name="scripted-demo")}
    )
    card = to_review(new_card(project))
    workspace = services._workspace(project.pk)
    workspace.card_worktree(card.pk)
    return card


def every_gitea_path(link: GiteaLink, card: Card, capture: Callable[..., Any]) -> None:
    """Every way a link's token leaves the server: the pull request push and API calls, a comment,
    reconciliation, and fetching a person's commits after a webhook."""
    services.card_pull_request_try(card_id=card.pk)
    pull, _ = PullRequestLink.objects.get_or_create(
        project_id=card.project_id, number=1, defaults={"card": card, "head_branch": f"card/{card.pk}"}
    )
    for call in (
        lambda: services.pull_request_comment(link_id=link.pk, number=1, text="hello"),
        lambda: services.gitea_reconcile(link=link),
    ):
        with contextlib.suppress(GiteaError, OrketError):
            call()
    services.gitea_reconcile_all()
    with capture(execute=True):
        services._after_commit_fetch(link, pull.pk, "b" * 40)


# ---------------------------------------------------------------------------------------------
# Item 1: variables not marked for secrets
# ---------------------------------------------------------------------------------------------


def test_a_maintainer_cannot_name_an_unmarked_variable_and_the_refusal_tells_nothing(
    environment: None, make_user: Any, listener: Listener, django_capture_on_commit_callbacks: Any
) -> None:
    client, project = maintainer_project(make_user)
    answers = []
    for name in UNMARKED:
        answer = put_link(client, project, base_url=listener.url, token_env=name)
        assert answer.status_code == 400, (name, answer.content)
        answers.append(answer.json())
    assert answers[0]["code"] == "secret_variable_refused" and "ORKET_SECRET_" in answers[0]["detail"]
    assert all(answer == answers[0] for answer in answers), "the answer differs between set and unset variables"
    assert SECRET_VALUE not in json.dumps(answers)
    assert not GiteaLink.objects.filter(project=project).exists()

    page = Client()
    page.force_login(project.memberships.get().user)
    form = {"base_url": listener.url, "owner": "o", "repo": "r", "token_env": "SECRET_KEY"}
    refused = page.post(f"/projects/{project.pk}/settings/gitea/", form)
    assert refused.status_code == 400 and "ORKET_SECRET_" in refused.content.decode()
    assert not GiteaLink.objects.filter(project=project).exists()

    saved = put_link(client, project, base_url=listener.url, token="stored-token")
    assert saved.status_code == 200, saved.content
    answer = put_link(client, project, base_url=listener.url, token_env="SECRET_KEY")
    assert answer.status_code == 400
    link = GiteaLink.objects.get(project=project)
    assert link.token_env == "" and link.token() == "stored-token"  # the refused change left the link as it was


def test_a_row_saved_before_the_rule_sends_nothing(
    environment: None, make_user: Any, listener: Listener, django_capture_on_commit_callbacks: Any
) -> None:
    client, project = maintainer_project(make_user)
    assert put_link(client, project, base_url=listener.url, token="stored").status_code == 200
    GiteaLink.objects.filter(project=project).update(token_env="SECRET_KEY", token_encrypted="")
    link = GiteaLink.objects.get(project=project)
    with pytest.raises(OrketError) as refused:
        link.token()
    assert refused.value.code == "secret_variable_refused" and SECRET_VALUE not in refused.value.message
    card = card_in_review(project)
    every_gitea_path(link, card, django_capture_on_commit_callbacks)
    assert listener.heard_nothing(), bytes(listener.received)
    said = " ".join(Comment.objects.filter(card=card).values_list("body", flat=True))
    assert "ORKET_SECRET_" in said and SECRET_VALUE not in said


def test_the_migration_forgets_unmarked_variable_names(environment: None, make_user: Any) -> None:
    from django.apps import apps as django_apps

    migration = importlib.import_module("agents.migrations.0010_secret_variables_and_outbound_hosts")
    _, project = maintainer_project(make_user)
    GiteaLink.objects.create(
        project=project, base_url="http://127.0.0.1:9", owner="o", repo="r", token_env="SECRET_KEY"
    )
    kept = ModelProfile.objects.create(
        name="kept", provider="openai", base_url="http://127.0.0.1:9", model="m", api_key_env="ORKET_SECRET_LLM"
    )
    forgotten = ModelProfile.objects.create(
        name="forgotten", provider="openai", base_url="http://127.0.0.1:9", model="m", api_key_env="DATABASE_URL"
    )
    migration.forget_unmarked_variables(django_apps, None)
    assert GiteaLink.objects.get(project=project).token_env == ""
    kept.refresh_from_db()
    forgotten.refresh_from_db()
    assert (kept.api_key_env, forgotten.api_key_env) == ("ORKET_SECRET_LLM", "")


def test_control_an_allowed_configuration_does_reach_the_listener(
    environment: None, make_user: Any, listener: Listener, django_capture_on_commit_callbacks: Any
) -> None:
    """Guards the tests around it: the same paths reach the listener when nothing forbids it."""
    client, project = maintainer_project(make_user)
    answer = put_link(client, project, base_url=listener.url, token_env="ORKET_SECRET_GITEA_TOKEN")
    assert answer.status_code == 200, answer.content
    card = card_in_review(project)
    every_gitea_path(GiteaLink.objects.get(project=project), card, django_capture_on_commit_callbacks)
    assert listener.connections > 0 and b"Authorization" in listener.received


# ---------------------------------------------------------------------------------------------
# Item 1: hosts the operator does not allow
# ---------------------------------------------------------------------------------------------


def test_a_host_the_operator_does_not_allow_is_refused_on_save_and_on_connect(
    environment: None,
    settings: Any,
    make_user: Any,
    listener: Listener,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client, project = maintainer_project(make_user)
    settings.ORKET_OUTBOUND_HOSTS = ["gitea.example.com"]
    for url in (listener.url, f"http://127.0.0.1:{closed_port()}", f"http://localhost:{listener.port}"):
        answer = put_link(client, project, base_url=url, token_env="ORKET_SECRET_GITEA_TOKEN")
        assert answer.status_code == 400 and answer.json()["code"] == "outbound_refused", answer.content
        assert "not among the hosts the operator allows" in answer.json()["detail"]

    settings.ORKET_OUTBOUND_HOSTS = ["127.0.0.0/8"]
    assert put_link(client, project, base_url=listener.url, token="stored").status_code == 200
    settings.ORKET_OUTBOUND_HOSTS = ["gitea.example.com", "10.0.0.0/8"]  # the operator narrowed the list
    link = GiteaLink.objects.get(project=project)
    card = card_in_review(project)
    every_gitea_path(link, card, django_capture_on_commit_callbacks)
    GiteaLink.objects.filter(pk=link.pk).update(base_url=f"http://localhost:{listener.port}")  # resolved on connect
    every_gitea_path(GiteaLink.objects.get(pk=link.pk), card, django_capture_on_commit_callbacks)
    assert listener.heard_nothing(), bytes(listener.received)


def test_the_card_comment_does_not_tell_an_open_port_from_a_closed_one(
    environment: None, settings: Any, make_user: Any, listener: Listener
) -> None:
    client, project = maintainer_project(make_user)
    assert put_link(client, project, base_url=listener.url, token="stored").status_code == 200
    settings.ORKET_OUTBOUND_HOSTS = ["gitea.example.com"]
    card = card_in_review(project)
    said = []
    for port in (listener.port, closed_port()):
        GiteaLink.objects.filter(project=project).update(base_url=f"http://127.0.0.1:{port}")
        Comment.objects.filter(card=card).delete()
        services.card_pull_request_try(card_id=card.pk)
        [comment] = Comment.objects.filter(card=card, body__contains="could not be opened")
        said.append(comment.body.replace(str(port), "<port>"))
    assert said[0] == said[1] and "not among the hosts the operator allows" in said[0], said
    assert listener.heard_nothing()


# ---------------------------------------------------------------------------------------------
# Item 1: model profiles
# ---------------------------------------------------------------------------------------------


def test_model_profiles_are_changed_by_staff_only(make_user: Any) -> None:
    seeded_project()
    profile = ModelProfile.objects.get(name="scripted-demo")
    body = {"name": "evil", "provider": "openai", "base_url": "http://127.0.0.1:1", "model": "m"}
    user = APIClient()
    user.force_authenticate(make_user("mallory"))
    for method, path in (
        ("post", "/api/model-profiles/"),
        ("put", f"/api/model-profiles/{profile.pk}/"),
        ("patch", f"/api/model-profiles/{profile.pk}/"),
        ("delete", f"/api/model-profiles/{profile.pk}/"),
    ):
        answer = getattr(user, method)(path, {**body, "api_key_env": "SECRET_KEY"}, format="json")
        assert answer.status_code == 403, (method, path, answer.status_code)
    assert user.get("/api/model-profiles/").status_code == 403
    assert not ModelProfile.objects.filter(name="evil").exists()
    profile.refresh_from_db()
    assert profile.api_key_env == ""


def admin_defaults(model: Any) -> dict[str, str]:
    """The admin add form as it comes filled in: every editable field with a default."""
    data = {}
    for field in model._meta.concrete_fields:
        if not field.editable or field.auto_created or not field.has_default():
            continue
        value = field.get_default()
        if isinstance(value, bool):
            if value:
                data[field.name] = "on"
        elif isinstance(value, list | dict):
            data[field.name] = json.dumps(value)
        else:
            data[field.name] = str(value)
    return data


def test_the_admin_refuses_unmarked_variables_and_hosts_not_allowed(settings: Any, make_user: Any) -> None:
    seeded_project()
    admin = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    form = {**admin_defaults(ModelProfile), "name": "remote", "provider": "openai", "model": "m"}
    add = f"/{settings.ORKET_ADMIN_URL}agents/modelprofile/add/"
    refused = client.post(add, {**form, "base_url": "http://127.0.0.1:11434", "api_key_env": "SECRET_KEY"})
    assert refused.status_code == 200 and "ORKET_SECRET_" in refused.content.decode()
    settings.ORKET_OUTBOUND_HOSTS = ["gitea.example.com"]
    refused = client.post(add, {**form, "base_url": "http://127.0.0.1:11434", "api_key_env": ""})
    assert refused.status_code == 200 and "not among the hosts" in refused.content.decode()
    assert not ModelProfile.objects.filter(name="remote").exists()
    settings.ORKET_OUTBOUND_HOSTS = ["127.0.0.0/8"]
    accepted = client.post(add, {**form, "base_url": "http://127.0.0.1:11434", "api_key_env": "ORKET_SECRET_LLM"})
    assert accepted.status_code == 302, accepted.content.decode()[:2000]


def test_a_model_profile_sends_nothing_to_a_host_not_allowed_or_with_an_unmarked_key(
    environment: None, settings: Any, listener: Listener
) -> None:
    seeded_project()
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], model="m", base_url=listener.url, timeout=5.0)
    for provider in ("openai", "ollama"):
        legacy_key = ModelProfile.objects.create(
            name=f"legacy-{provider}", provider=provider, base_url=listener.url, model="m", api_key_env="SECRET_KEY"
        )
        assert legacy_key.api_key() is None
        assert engine.model_server_answers(legacy_key, timeout=2) is False
        with pytest.raises(ProviderError):
            list(provider_for(provider, **legacy_key.connection_options()).stream(request))
    settings.ORKET_OUTBOUND_HOSTS = ["gitea.example.com"]
    for provider in ("openai", "ollama"):
        profile = ModelProfile.objects.create(
            name=f"remote-{provider}",
            provider=provider,
            base_url=listener.url,
            model="m",
            api_key_env="ORKET_SECRET_GITEA_TOKEN",
        )
        assert engine.model_server_answers(profile, timeout=2) is False
        with pytest.raises(ProviderError) as refused:
            list(provider_for(provider, **profile.connection_options()).stream(request))
        assert "not among the hosts" in str(refused.value)
    assert listener.heard_nothing(), bytes(listener.received)
    settings.ORKET_OUTBOUND_HOSTS = ["127.0.0.1"]  # control: allowed, the probe does reach the listener
    assert engine.model_server_answers(ModelProfile.objects.get(name="remote-openai"), timeout=2) is True
    assert listener.connections == 1 and ATTACKER_VALUE.encode() in listener.received


# ---------------------------------------------------------------------------------------------
# Item 2: the stored token does not follow the link elsewhere
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("moved", [{"base_url": "http://127.0.0.2:3000"}, {"owner": "other"}, {"repo": "other"}])
def test_moving_the_link_drops_the_stored_token_and_the_webhook_secret(
    environment: None, make_user: Any, moved: dict[str, str]
) -> None:
    client, project = maintainer_project(make_user)
    place = {"base_url": "http://127.0.0.1:3000", "owner": "o", "repo": "r"}
    first = client.put(f"/api/projects/{project.pk}/gitea/", {**place, "token": "first-token"}, format="json")
    old_secret = first.json()["webhook_secret"]
    kept = client.put(f"/api/projects/{project.pk}/gitea/", {**place, "required_approvals": 2}, format="json")
    assert kept.json()["has_token"] is True and "webhook_secret" not in kept.json()  # not moved: kept

    answer = client.put(f"/api/projects/{project.pk}/gitea/", {**place, **moved}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["has_token"] is False
    new_secret = answer.json()["webhook_secret"]
    link = GiteaLink.objects.get(project=project)
    assert link.token_encrypted == "" and link.token() == ""
    assert link.webhook_secret() == new_secret != old_secret
    body = b'{"action": "opened"}'
    hook = Client().post(
        f"/hooks/gitea/{project.pk}/",
        body,
        content_type="application/json",
        HTTP_X_GITEA_EVENT="pull_request",
        HTTP_X_GITEA_SIGNATURE=signed_headers(old_secret, body, event="pull_request")["X-Gitea-Signature"],
    )
    assert hook.status_code == 401  # the old secret no longer signs for this project


def test_moving_the_link_with_a_new_token_keeps_the_new_token(environment: None, make_user: Any) -> None:
    client, project = maintainer_project(make_user)
    place = {"base_url": "http://127.0.0.1:3000", "owner": "o", "repo": "r"}
    first = client.put(f"/api/projects/{project.pk}/gitea/", {**place, "token": "first-token"}, format="json")
    moved = {**place, "base_url": "http://127.0.0.2:3000", "token": "second-token"}
    answer = client.put(f"/api/projects/{project.pk}/gitea/", moved, format="json")
    assert answer.status_code == 200 and answer.json()["has_token"] is True
    link = GiteaLink.objects.get(project=project)
    assert link.token() == "second-token"
    assert link.webhook_secret() == first.json()["webhook_secret"]


# ---------------------------------------------------------------------------------------------
# Item 10: refused webhook calls write nothing
# ---------------------------------------------------------------------------------------------


def test_unsigned_and_wrongly_signed_webhook_calls_write_nothing(environment: None, make_user: Any) -> None:
    client, project = maintainer_project(make_user)
    assert put_link(client, project, base_url="http://127.0.0.1:3000", token="t").status_code == 200
    body = b'{"action": "opened"}'
    shapes = [
        {"HTTP_X_GITEA_EVENT": "pull_request"},
        {"HTTP_X_GITEA_EVENT": "pull_request", "HTTP_X_GITEA_SIGNATURE": "0" * 64},
        {"HTTP_X_GITEA_EVENT": "pull_request", "HTTP_X_HUB_SIGNATURE_256": "sha256=" + "1" * 64},
    ]
    for target in (str(project.pk), project.slug, "999999"):
        for headers in shapes:
            with CaptureQueriesContext(connection) as queries:
                answer = Client().post(f"/hooks/gitea/{target}/", body, content_type="application/json", **headers)
            assert answer.status_code == 401
            writes = [
                q["sql"] for q in queries if q["sql"].lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
            ]
            assert not writes, writes
    assert not WebhookDelivery.objects.exists()
    assert GiteaLink.objects.get(project=project).refused_deliveries == 6  # counted outside the database
