"""The Gitea API client against the stand-in: paths, shapes, token, retries and errors."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from agents.gitea import git_remote
from agents.gitea.client import (
    GiteaAuthError,
    GiteaClient,
    GiteaConflict,
    GiteaNotFound,
    GiteaRequestError,
    GiteaUnavailable,
)
from tests.gitea.fake_gitea import GIT_ENV, FakeGitea


def _client(fake: FakeGitea, **options: object) -> GiteaClient:
    return GiteaClient(fake.url, fake.owner, fake.repo, token=fake.token, sleep=lambda _: None, **options)


def _workspace_with_branch(branch: str) -> Path:
    repo = Path(tempfile.mkdtemp(prefix="ws-")) / "repo"
    repo.mkdir()
    for args in (
        ["init", "-q", "--initial-branch=main"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"],
        ["checkout", "-q", "-b", branch],
    ):
        subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True)
    (repo / "x.py").write_text("x = 1\n")
    subprocess.run(["git", "add", "x.py"], cwd=repo, env=GIT_ENV, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x"],
        cwd=repo,
        env=GIT_ENV,
        check=True,
    )
    return repo


def test_pushes_are_real_and_the_token_never_shows(fake_gitea: FakeGitea) -> None:
    repo = _workspace_with_branch("card/1")
    url = git_remote.remote_url(fake_gitea.url, fake_gitea.owner, fake_gitea.repo)
    git_remote.push(repo, url, fake_gitea.token, local_ref="refs/heads/main", remote_branch="main")
    sha = git_remote.push(repo, url, fake_gitea.token, local_ref="refs/heads/card/1", remote_branch="card/1")
    assert fake_gitea.branch_sha("card/1") == sha
    with pytest.raises(git_remote.PushFailed) as refused:
        git_remote.push(repo, url, "wrong-token", local_ref="refs/heads/card/1", remote_branch="card/2")
    assert "wrong-token" not in str(refused.value)
    assert git_remote.fetch(repo, url, fake_gitea.token, remote_branch="card/1") == sha


def test_the_calls_orket_needs(fake_gitea: FakeGitea) -> None:
    repo = _workspace_with_branch("card/5")
    url = git_remote.remote_url(fake_gitea.url, fake_gitea.owner, fake_gitea.repo)
    git_remote.push(repo, url, fake_gitea.token, local_ref="refs/heads/main", remote_branch="main")
    git_remote.push(repo, url, fake_gitea.token, local_ref="refs/heads/card/5", remote_branch="card/5")
    with _client(fake_gitea) as client:
        assert client.repository()["full_name"] == "orket/demo"
        pull = client.pull_create(head="card/5", base="main", title="Card #5", body="body")
        assert pull["number"] == 1 and pull["head"]["ref"] == "card/5" and pull["state"] == "open"
        assert client.pull_get(1)["title"] == "Card #5"
        assert [p["number"] for p in client.pulls_open()] == [1]
        assert client.comment_create(1, "hello")["body"] == "hello"
        assert client.reviews_list(1) == []
        fake_gitea.review(1, "alice", "APPROVED", "fine", send=False)
        assert client.reviews_list(1)[0]["state"] == "APPROVED"
        issue = client.issue_create(title="Requirements review", body="why")
        assert issue["number"] == 2
        client.pull_merge(1)
        assert client.pull_get(1)["merged"] is True
        with pytest.raises(GiteaConflict):
            client.pull_merge(1)
        assert client.pulls_open() == []
        with pytest.raises(GiteaRequestError):
            client.pull_create(head="no-such-branch", base="main", title="x", body="")
        with pytest.raises(GiteaNotFound):
            client.pull_get(99)
    assert all(call.authorization == f"token {fake_gitea.token}" for call in fake_gitea.calls)
    assert fake_gitea.calls_to("PATCH", "/pulls/1") == []


def test_close_is_a_patch_of_the_state(fake_gitea: FakeGitea) -> None:
    repo = _workspace_with_branch("card/6")
    url = git_remote.remote_url(fake_gitea.url, fake_gitea.owner, fake_gitea.repo)
    git_remote.push(repo, url, fake_gitea.token, local_ref="refs/heads/main", remote_branch="main")
    git_remote.push(repo, url, fake_gitea.token, local_ref="refs/heads/card/6", remote_branch="card/6")
    with _client(fake_gitea) as client:
        client.pull_create(head="card/6", base="main", title="t", body="")
        assert client.pull_close(1)["state"] == "closed"
    [call] = fake_gitea.calls_to("PATCH", "/pulls/1")
    assert call.json == {"state": "closed"}


def test_5xx_answers_are_retried_and_4xx_are_not(fake_gitea: FakeGitea) -> None:
    with _client(fake_gitea) as client:
        fake_gitea.fail_next = [502, 503]
        assert client.repository()["name"] == "demo"
        assert len(fake_gitea.calls) == 3
        fake_gitea.fail_next = [500, 500, 500]
        with pytest.raises(GiteaUnavailable) as failed:
            client.repository()
        assert "500" in failed.value.message
        before = len(fake_gitea.calls)
        fake_gitea.fail_next = [422]
        with pytest.raises(GiteaRequestError):
            client.repository()
        assert len(fake_gitea.calls) == before + 1
    client = GiteaClient(fake_gitea.url, "orket", "demo", token="wrong", sleep=lambda _: None)
    with client, pytest.raises(GiteaAuthError):
        client.repository()


def test_connection_errors_are_retried_then_reported() -> None:
    slept: list[float] = []
    client = GiteaClient("http://127.0.0.1:9", "o", "r", token="t", sleep=slept.append, timeout=0.5)
    with client, pytest.raises(GiteaUnavailable) as failed:
        client.repository()
    assert len(slept) == 2 and slept[1] > slept[0]
    assert "could not be reached" in failed.value.message
