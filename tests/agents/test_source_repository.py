"""A project's source repository, end to end: real git over HTTP (git http-backend on 127.0.0.1) and
from a local path, cloned into the workspace, card branches started from the source's default branch
(named trunk here, to prove it is detected), runs of the scripted team committing on them, and new
upstream commits fetched before the next run. Plus the refusals and what an auth failure says."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from agents import services as agent_services
from agents.models import EpicAgentSettings, RunEvent
from agents.sources import services
from agents.sources.models import SourceRepository
from boards.actors import Actor
from boards.models import Card, Epic, Membership, Project, ProjectRole
from boards.services import epic_import
from orket_site.seed import seed_first_run
from tests.agents.engine_support import drive, wait_for_run, worker_thread
from tests.agents.git_http import GitHttpServer, commit_upstream, git, upstream_repository

pytestmark = pytest.mark.django_db(transaction=True)

ONE_CARD_EPIC = {
    "name": "Farewells",
    "team": "standard",
    "cards": [
        {
            "summary": "Implement the farewell formatter",
            "seat": "senior_developer",
            "priority": "medium",
            "description": "A function that says goodbye to a name.",
            "acceptance_criteria": "Says goodbye by name; has a test.",
        }
    ],
}


@pytest.fixture
def demo(settings, tmp_path: Path) -> Epic:
    settings.DATA_DIR = tmp_path / "data"
    seed_first_run()
    return Epic.objects.get(project__slug="demo")


def _repo(project_id: int, data_dir: Path) -> Path:
    return data_dir / "workspaces" / f"project-{project_id}" / "repo"


def _is_ancestor(repo: Path, sha: str, ref: str) -> bool:
    done = subprocess.run(["git", "merge-base", "--is-ancestor", sha, ref], cwd=repo, capture_output=True, check=False)
    return done.returncode == 0


def _wait_state(project: Project, states: tuple[str, ...], timeout: float = 60.0) -> SourceRepository:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        source = SourceRepository.objects.get(project=project)
        if source.state in states:
            return source
        time.sleep(0.05)
    raise AssertionError(f"the source stayed {SourceRepository.objects.get(project=project).state}")


def _admin() -> object:
    return get_user_model().objects.get(username="admin")


def _card_branch_commits(repo: Path, card_id: int, base: str) -> list[str]:
    return git(repo, "log", "--format=%an", f"{base}..card/{card_id}").splitlines()


def test_a_source_served_over_http_is_cloned_worked_on_and_fetched_before_the_next_run(
    demo: Epic, settings, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    bare = upstream_repository(served, "team/app.git", branch="trunk")
    first = git(bare, "rev-parse", "trunk")
    project = demo.project
    with GitHttpServer(served) as server, worker_thread():
        services.source_repository_set(project=project, user=_admin(), kind="remote", url=server.url("team/app.git"))
        source = _wait_state(project, ("ready", "failed"))
        assert source.state == "ready", source.error
        assert (source.default_branch, source.head_sha, source.progress) == ("trunk", first, 100)

        run = wait_for_run(agent_services.run_start(epic=demo).pk)
        assert run.status == "succeeded", run.status_reason
        repo = _repo(project.pk, settings.DATA_DIR)
        assert run.source_revision == first
        assert RunEvent.objects.filter(run=run, kind="source.fetched").exists()
        for card in Card.objects.filter(epic=demo):
            # Each card branch starts from the source's default branch and holds the seats' commits.
            assert _is_ancestor(repo, first, f"card/{card.pk}")
            authors = set(_card_branch_commits(repo, card.pk, first))
            assert card.seat in authors and authors <= {card.seat, "lead_architect", "senior_developer", "Orket"}, (
                authors
            )
        assert (repo / "README.md").read_text() == "upstream project\n"
        assert _is_ancestor(repo, first, "trunk") and git(repo, "branch", "--list", "main") == ""

        # A commit pushed upstream is fetched before the next run and the next card branch starts from it.
        second = commit_upstream(bare, "trunk", {"UPSTREAM.md": "news from upstream\n"}, "Upstream moves on")
        farewells = epic_import(project=project, data=ONE_CARD_EPIC, actor=Actor.orket("test"))
        run = wait_for_run(agent_services.run_start(epic=farewells).pk)
        assert run.status == "succeeded", run.status_reason
        assert run.source_revision == second
        card = Card.objects.get(epic=farewells)
        assert _is_ancestor(repo, second, f"card/{card.pk}")
        assert git(repo, "show", f"card/{card.pk}:UPSTREAM.md") == "news from upstream"
        assert "senior_developer" in _card_branch_commits(repo, card.pk, second)
        assert _is_ancestor(repo, second, "trunk")  # the local base branch follows the source too
    assert any(request.startswith("POST /team/app.git/git-upload-pack") for request in server.requests)


def test_a_local_source_under_the_roots_is_cloned_and_an_epic_may_start_from_another_branch(
    demo: Epic, settings, tmp_path: Path
) -> None:
    roots = tmp_path / "roots"
    settings.ORKET_LOCAL_REPO_ROOTS = os.pathsep.join([str(tmp_path / "elsewhere"), str(roots)])
    bare = upstream_repository(roots / "git", "app.git", branch="trunk")
    project = demo.project
    source = services.source_repository_set(project=project, user=_admin(), kind="local", path=str(bare))
    source = services.source_clone(project_id=project.pk, generation=source.generation)
    assert source is not None and source.state == "ready", source and source.error
    assert source.default_branch == "trunk" and source.local_path == os.path.realpath(bare)
    repo = _repo(project.pk, settings.DATA_DIR)

    release = commit_upstream(bare, "release", {"NEWS.md": "on the release branch\n"}, "Release news")
    services.epic_base_branch_set(epic=demo, base_branch="release")
    run = drive(agent_services.run_start(epic=demo).pk)
    assert run.status == "succeeded", run.status_reason
    for card in Card.objects.filter(epic=demo):
        assert _is_ancestor(repo, release, f"card/{card.pk}")
        assert "senior_developer" in _card_branch_commits(repo, card.pk, release) or card.seat != "senior_developer"

    # The next run fetches first: its card starts from the default branch as it is now upstream.
    newer = commit_upstream(bare, "trunk", {"LATER.md": "later\n"}, "Later upstream work")
    farewells = epic_import(project=project, data=ONE_CARD_EPIC, actor=Actor.orket("test"))
    run = drive(agent_services.run_start(epic=farewells).pk)
    assert run.status == "succeeded", run.status_reason
    card = Card.objects.get(epic=farewells)
    assert _is_ancestor(repo, newer, f"card/{card.pk}") and not _is_ancestor(repo, release, f"card/{card.pk}")


def test_a_run_fails_with_the_reason_when_the_fetch_fails(demo: Epic, settings, tmp_path: Path) -> None:
    roots = tmp_path / "roots"
    settings.ORKET_LOCAL_REPO_ROOTS = str(roots)
    bare = upstream_repository(roots, "app.git")
    source = services.source_repository_set(project=demo.project, user=_admin(), kind="local", path=str(bare))
    services.source_clone(project_id=demo.project_id, generation=source.generation)
    subprocess.run(["rm", "-rf", str(bare)], check=True)
    run = drive(agent_services.run_start(epic=demo).pk)
    assert run.status == "failed"
    assert run.status_reason.startswith("Fetching the source repository failed:"), run.status_reason
    assert not Card.objects.filter(epic=demo).exclude(status="ready").exists()  # no turn worked on stale code
    assert SourceRepository.objects.get(project=demo.project).fetch_error


def test_a_run_fails_with_the_reason_while_the_clone_has_failed(demo: Epic, settings, tmp_path: Path) -> None:
    settings.ORKET_LOCAL_REPO_ROOTS = str(tmp_path)
    empty_dir = tmp_path / "not-a-repo"
    empty_dir.mkdir()
    source = services.source_repository_set(project=demo.project, user=_admin(), kind="local", path=str(empty_dir))
    source = services.source_clone(project_id=demo.project_id, generation=source.generation)
    assert source.state == "failed" and source.error
    run = drive(agent_services.run_start(epic=demo).pk)
    assert run.status == "failed" and "could not be cloned" in run.status_reason, run.status_reason


def test_an_auth_failure_names_the_variable_and_never_the_secret(
    demo: Epic, settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    served = tmp_path / "served"
    upstream_repository(served, "app.git")
    wrong, right = "wrong-Secret-7f3a9c", "right-Secret-0b8e21"
    monkeypatch.setenv("ORKET_SECRET_GIT_TOKEN", wrong)
    project = demo.project
    with GitHttpServer(served, token=right) as server:
        source = services.source_repository_set(
            project=project, user=_admin(), kind="remote", url=server.url("app.git"), token_env="ORKET_SECRET_GIT_TOKEN"
        )
        source = services.source_clone(project_id=project.pk, generation=source.generation)
        assert source.state == "failed"
        assert source.error.startswith("Authentication failed: check ORKET_SECRET_GIT_TOKEN"), source.error
        assert source.token_env == "ORKET_SECRET_GIT_TOKEN"

        monkeypatch.setenv("ORKET_SECRET_GIT_TOKEN", right)
        source = services.source_repository_set(
            project=project, user=_admin(), kind="remote", url=server.url("app.git"), token_env="ORKET_SECRET_GIT_TOKEN"
        )
        source = services.source_clone(project_id=project.pk, generation=source.generation)
        assert source.state == "ready", source.error
        run = drive(agent_services.run_start(epic=demo).pk)  # fetches with the token too
        assert run.status == "succeeded", run.status_reason
    repo = _repo(project.pk, settings.DATA_DIR)
    stored = "".join(p.read_text(errors="replace") for p in (repo / ".git").glob("config*"))
    stored += "".join(str(row) for row in SourceRepository.objects.values())
    stored += "".join(str(e.data) for e in RunEvent.objects.all()) + caplog.text
    for secret in (wrong, right):
        assert secret not in stored
    assert any(auth.startswith("Basic ") for auth in server.authorizations)


# ---------------------------------------------------------------------------------------------
# Refusals through the API
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def people(demo: Epic) -> dict[str, APIClient]:
    User = get_user_model()
    clients = {}
    for role in (ProjectRole.VIEWER, ProjectRole.MEMBER, ProjectRole.MAINTAINER):
        user = User.objects.create_user(username=f"a-{role}", password="x")
        Membership.objects.create(project=demo.project, user=user, role=role)
        client = APIClient()
        client.force_authenticate(user)
        clients[role] = client
    return clients


def test_the_api_refuses_what_it_must_and_changes_nothing(
    demo: Epic, people: dict[str, APIClient], settings, tmp_path: Path
) -> None:
    roots, outside = tmp_path / "roots", tmp_path / "outside"
    settings.ORKET_LOCAL_REPO_ROOTS = str(roots)
    upstream_repository(roots, "ok.git")
    upstream_repository(outside, "secret.git")
    (roots / "escape").symlink_to(outside / "secret.git")
    url = f"/api/projects/{demo.project_id}/source/"
    maintainer = people[ProjectRole.MAINTAINER]

    cases = [
        ({"kind": "local", "path": str(outside / "secret.git")}, "path_refused", "ORKET_LOCAL_REPO_ROOTS"),
        ({"kind": "local", "path": str(roots / "escape")}, "path_refused", "ORKET_LOCAL_REPO_ROOTS"),
        ({"kind": "local", "path": str(roots / ".." / "outside" / "secret.git")}, "path_refused", "not under"),
        ({"kind": "local", "path": "relative/path"}, "path_refused", "absolute path"),
        ({"kind": "remote", "url": "http://10.9.8.7/app.git"}, "outbound_refused", "ORKET_OUTBOUND_HOSTS"),
        ({"kind": "remote", "url": "ftp://127.0.0.1/app.git"}, "outbound_refused", "http://"),
        ({"kind": "remote", "url": "http://user:pw@127.0.0.1/app.git"}, "outbound_refused", "user name"),
        ({"kind": "remote", "url": ""}, "bad_url", "URL"),
        (
            {"kind": "remote", "url": "http://127.0.0.1/a.git", "token_env": "SECRET_KEY"},
            "secret_variable_refused",
            "ORKET_SECRET_",
        ),
        ({"kind": "gitea"}, "not_linked", "Gitea"),
        ({"kind": "ftp"}, None, ""),
    ]
    for body, code, words in cases:
        answer = maintainer.put(url, body, format="json")
        assert answer.status_code == 400, (body, answer.status_code, answer.content)
        if code:
            assert answer.json()["code"] == code, (body, answer.json())
            assert words in answer.json()["detail"], (body, answer.json())
    for role in (ProjectRole.VIEWER, ProjectRole.MEMBER):
        answer = people[role].put(url, {"kind": "local", "path": str(roots / "ok.git")}, format="json")
        assert answer.status_code == 403, answer.content
        assert people[role].delete(url).status_code == 403
        assert (
            people[role].put(f"/api/epics/{demo.pk}/base-branch/", {"base_branch": "x"}, format="json").status_code
            == 403
        )
    assert not SourceRepository.objects.exists() and not EpicAgentSettings.objects.filter(base_branch="x").exists()
    assert people[ProjectRole.VIEWER].get(url).json() == {"kind": None, "state": "none"}
    bad = maintainer.put(f"/api/epics/{demo.pk}/base-branch/", {"base_branch": "../etc"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "bad_branch"
    outsider = APIClient()
    outsider.force_authenticate(get_user_model().objects.create_user(username="stranger", password="x"))
    assert outsider.get(url).status_code == 404

    answer = maintainer.put(url, {"kind": "local", "path": str(roots / "ok.git")}, format="json")
    assert answer.status_code == 202 and answer.json()["state"] == "cloning"
    seen = people[ProjectRole.MEMBER].get(url).json()
    assert seen["kind"] == "local" and seen["local_path"] == str((roots / "ok.git").resolve())
    ok = maintainer.put(f"/api/epics/{demo.pk}/base-branch/", {"base_branch": "release/2.0"}, format="json")
    assert ok.status_code == 200 and people[ProjectRole.VIEWER].get(f"/api/epics/{demo.pk}/base-branch/").json() == {
        "base_branch": "release/2.0"
    }


def test_a_symlink_swapped_after_saving_is_refused_at_clone_time(demo: Epic, settings, tmp_path: Path) -> None:
    roots, outside = tmp_path / "roots", tmp_path / "outside"
    settings.ORKET_LOCAL_REPO_ROOTS = str(roots)
    inside = upstream_repository(roots, "app.git")
    upstream_repository(outside, "secret.git")
    source = services.source_repository_set(project=demo.project, user=_admin(), kind="local", path=str(inside))
    subprocess.run(["rm", "-rf", str(inside)], check=True)
    inside.symlink_to(outside / "secret.git")
    source = services.source_clone(project_id=demo.project_id, generation=source.generation)
    assert source.state == "failed" and "ORKET_LOCAL_REPO_ROOTS" in source.error


def test_the_settings_page_shows_the_state_and_only_maintainers_change_it(
    demo: Epic, people: dict[str, APIClient], settings, tmp_path: Path
) -> None:
    from django.test import Client

    settings.ORKET_LOCAL_REPO_ROOTS = str(tmp_path / "roots")
    bare = upstream_repository(tmp_path / "roots", "app.git")
    page = f"/projects/{demo.project_id}/settings/source/"
    member, maintainer = Client(), Client()
    member.force_login(get_user_model().objects.get(username=f"a-{ProjectRole.MEMBER}"))
    maintainer.force_login(get_user_model().objects.get(username=f"a-{ProjectRole.MAINTAINER}"))
    assert "No source repository" in member.get(page).content.decode()
    assert member.post(page, {"section": "source", "kind": "local", "path": str(bare)}).status_code == 403
    refused = maintainer.post(page, {"section": "source", "kind": "local", "path": "/etc"})
    assert refused.status_code == 400 and "ORKET_LOCAL_REPO_ROOTS" in refused.content.decode()
    assert maintainer.post(page, {"section": "source", "kind": "local", "path": str(bare)}).status_code == 302
    source = SourceRepository.objects.get(project=demo.project)
    services.source_clone(project_id=demo.project_id, generation=source.generation)
    shown = member.get(page).content.decode()
    assert 'id="source-state">ready<' in shown and "trunk" in shown
    assert "source-settings-link" in member.get(f"/projects/{demo.project_id}/settings/").content.decode()


def test_a_run_fails_while_the_clone_runs_and_says_when_a_clone_has_stalled(
    demo: Epic, settings, tmp_path: Path
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    settings.ORKET_LOCAL_REPO_ROOTS = str(tmp_path)
    bare = upstream_repository(tmp_path, "app.git")
    services.source_repository_set(project=demo.project, user=_admin(), kind="local", path=str(bare))
    run = drive(agent_services.run_start(epic=demo).pk)  # no worker: the clone has not run
    assert run.status == "failed" and "still being cloned (0%)" in run.status_reason, run.status_reason
    SourceRepository.objects.update(updated_at=timezone.now() - timedelta(hours=2))
    run = drive(agent_services.run_start(epic=demo).pk)
    assert run.status == "failed" and "stopped making progress" in run.status_reason, run.status_reason
