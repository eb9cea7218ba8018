"""The linked Gitea repository as the project's source: Orket clones it (default branch trunk), the
card branch starts from trunk, and the pull request goes back to the same repository against trunk,
so the card branch pushed there shares trunk's history. Gitea is the stand-in (real git over HTTP)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from agents import services as agent_services
from agents.gitea.models import DeliveryStatus, PullRequestLink, WebhookDelivery
from agents.sources import services
from agents.sources.models import SourceRepository
from tests.agents.engine_support import wait_for_run, worker_thread
from tests.agents.git_http import commit_upstream, git
from tests.gitea.fake_gitea import FakeGitea
from tests.gitea.support import link, new_card, seeded_project

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_linked_gitea_repository_as_source_gets_pull_requests_that_share_its_history(
    settings: Any, tmp_path: Any, live_server: Any
) -> None:
    settings.DATA_DIR = tmp_path / "data"
    with FakeGitea() as fake, worker_thread():
        trunk = commit_upstream(fake.bare, "trunk", {"README.md": "existing code\n"}, "Existing project")
        git(fake.bare, "symbolic-ref", "HEAD", "refs/heads/trunk")
        project = seeded_project()
        gitea_link, secret = link(project, base_url=fake.url, full_name=f"{fake.owner}/{fake.repo}")
        fake.hook_url, fake.hook_secret = f"{live_server.url}/hooks/gitea/{project.pk}/", secret

        services.source_repository_set(project=project, user=None, kind="gitea")
        source = wait_until(
            "the clone", lambda: SourceRepository.objects.filter(project=project).exclude(state="cloning").first()
        )
        assert source.state == "ready" and source.default_branch == "trunk", source.error

        card = new_card(project)
        run = agent_services.run_start(epic=card.epic, card=card)
        pull = wait_until(
            "the pull request",
            lambda: PullRequestLink.objects.filter(card=card).first() and fake.branch_sha(f"card/{card.pk}"),
        )
        assert pull
        opened = fake.pull(PullRequestLink.objects.get(card=card).number)
        assert opened["base"]["ref"] == "trunk"
        pushed = fake.branch_sha(f"card/{card.pk}")
        shared = subprocess.run(["git", "merge-base", "--is-ancestor", trunk, pushed], cwd=fake.bare, check=False)
        assert shared.returncode == 0
        assert fake.branch_sha("main") == ""  # nothing was pushed beside the source's own branches
        assert gitea_link.base_branch == "main"  # the link's default did not decide the target
        # Let the loop settle (the run ends, Gitea's webhooks are processed) before the worker stops.
        assert wait_for_run(run.pk).status == "succeeded"
        fake.wait_sent()
        wait_until("the deliveries", lambda: not WebhookDelivery.objects.filter(status=DeliveryStatus.QUEUED).exists())
