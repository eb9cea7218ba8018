"""The review loop end to end: the scripted team works a card, Orket pushes its branch to the Gitea
stand-in (real git over HTTP) and opens a pull request, people review in the stand-in, which sends
signed webhooks to Orket's live server, and a real Celery worker thread processes them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from agents import services as agent_services
from agents.gitea import services
from agents.gitea.models import DeliveryStatus, PullRequestLink, WebhookDelivery
from agents.models import Run, SeatNote
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, CardHistory, Comment
from sandboxes import services as sandbox_services
from sandboxes.models import Sandbox
from tests.agents.engine_support import worker_thread
from tests.gitea.fake_gitea import FakeGitea
from tests.gitea.support import link, new_card, seeded_project
from tests.sandboxes.test_sandbox_docker import APP as SANDBOX_APP
from tests.waits import CeleryTasksInFlight, celery_tasks_in_flight, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Loop:
    """The project, its card, the stand-in and helpers to wait for the loop to settle."""

    def __init__(self, fake: FakeGitea, tasks: CeleryTasksInFlight, live_url: str, **policy: Any) -> None:
        self.fake = fake
        self.tasks = tasks
        self.project = seeded_project()
        self.link, secret = link(self.project, base_url=fake.url, full_name=f"{fake.owner}/{fake.repo}", **policy)
        fake.hook_url, fake.hook_secret = f"{live_url}/hooks/gitea/{self.project.pk}/", secret
        self.card = new_card(self.project)

    @property
    def pull(self) -> PullRequestLink:
        return PullRequestLink.objects.filter(card=self.card).order_by("-id").first()

    def refresh(self) -> Card:
        self.card.refresh_from_db()
        return self.card

    def local_sha(self) -> str:
        repo = Path(settings.DATA_DIR) / "workspaces" / f"project-{self.project.pk}" / "repo"
        done = subprocess.run(
            ["git", "rev-parse", f"refs/heads/card/{self.card.pk}"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip()

    def settle(self, timeout: float = 90.0) -> None:
        """Until webhooks are sent and processed, runs are finished and no PR push is pending."""

        def settled() -> bool:
            self.fake.wait_sent()
            if WebhookDelivery.objects.filter(status=DeliveryStatus.QUEUED).exists():
                return False
            if Run.objects.filter(status__in=["queued", "running"]).exists():
                return False
            card = self.refresh()
            if card.status == "done" and self.link.auto_merge and self.pull and self.pull.state == "open":
                return False  # the merge task has not recorded its merge yet
            if card.status == "code_review" and self.pull and self.pull.state == "open":
                remote = self.fake.branch_sha(f"card/{card.pk}")
                return bool(remote) and remote == self.local_sha() and remote == self.pull.head_sha
            return True

        def settled_with_no_task_left() -> bool:
            """Settled, with no Celery task queued or running before the check, none published during it
            and none after: work only moves through tasks (a webhook's delivery queues one)."""
            published = self.tasks.published_count
            return self.tasks.idle() and settled() and self.tasks.idle() and self.tasks.published_count == published

        wait_until("the loop to settle", settled_with_no_task_left, timeout=timeout)

    def first_pull_request(self) -> PullRequestLink:
        run = agent_services.run_start(epic=self.card.epic, card=self.card)
        wait_until("the pull request", lambda: self.pull)
        self.settle()
        run.refresh_from_db()
        assert run.status == "succeeded" and "await review in Gitea" in run.status_reason, run.status_reason
        return self.pull


@pytest.fixture
def loop_env(
    settings: Any, tmp_path: Any, live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Loop]]:
    settings.DATA_DIR = tmp_path
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    monkeypatch.setenv("ORKET_SANDBOX_HEALTH_TIMEOUT", "30")
    with celery_tasks_in_flight() as tasks, FakeGitea() as fake, worker_thread():
        try:
            yield lambda **policy: Loop(fake, tasks, live_server.url, **policy)
        finally:
            for sandbox in Sandbox.objects.exclude(status="deleted"):
                sandbox_services.sandbox_delete(sandbox=sandbox)
                sandbox_services.sandbox_teardown(sandbox_id=sandbox.pk)


def test_a_card_goes_through_two_rejections_an_approval_and_a_merge(loop_env: Callable[..., Loop]) -> None:
    loop = loop_env(required_reviewers=["alice"], auto_merge=True, auto_deploy=True)
    fake = loop.fake
    pull = loop.first_pull_request()
    number = pull.number
    # The pull request carries the card: title with its id, summary, acceptance criteria, the turns.
    opened = fake.pull(number)
    assert opened["title"].startswith(f"Card #{loop.card.pk}:")
    assert "GET /greet?name=Ada" in opened["body"] and "senior_developer as coder" in opened["body"]
    assert opened["head"]["ref"] == f"card/{loop.card.pk}" and opened["head"]["sha"] == pull.last_pushed_sha
    card = loop.refresh()
    assert card.status == "code_review"
    assert card.pull_request == {"number": number, "url": opened["html_url"], "state": "open"}
    # No agent review turn while people review in Gitea: only the coder worked.
    assert set(card.history.filter(event="transition").values_list("actor_seat", flat=True)) <= {"senior_developer", ""}

    # Cycle 1: changes requested by the required reviewer.
    first_sha = pull.last_pushed_sha
    fake.review(number, "alice", "REQUEST_CHANGES", "Empty names must be refused with a ValueError.")
    loop.settle()
    card = loop.refresh()
    assert card.review_cycle == 1 and card.status == "code_review"
    assert loop.pull.last_pushed_sha != first_sha  # the coder's fix was pushed to the same pull request
    assert SeatNote.objects.filter(card=card, body__contains="Empty names must be refused").exists()
    own_push = [s for s in fake.sent if s.action == "synchronized"]
    assert own_push and all(s.status == 202 for s in own_push)

    # A person pushes a commit (a runnable app, for the sandbox later): the agents review it and say so.
    fake.push_commit(number, by="alice", files={"requirements.txt": "", "app.py": SANDBOX_APP})
    loop.settle()
    assert any("agents' review of the new commits" in body for body in fake.comment_bodies(number))
    assert loop.refresh().status == "code_review"

    # Cycle 2; an approval by someone who is not a required reviewer changes nothing.
    fake.review(number, "alice", "REQUEST_CHANGES", "Also cover overlong names.")
    loop.settle()
    assert loop.refresh().review_cycle == 2
    fake.review(number, "bob", "APPROVED", "LGTM")
    loop.settle()
    assert loop.refresh().status == "code_review"

    # Approved by the required reviewer: the integrity guard finishes the card and Orket merges.
    fake.review(number, "alice", "APPROVED", "Good now.")
    loop.settle()
    card = loop.refresh()
    assert card.status == "done"
    done = CardHistory.objects.get(card=card, event="transition", to_status="done")
    assert done.actor_seat == "quality_assurance" and "finalizer" in done.actor_roles
    assert fake.pull(number)["merged"] is True and len(fake.calls_to("POST", f"/pulls/{number}/merge")) == 1
    assert card.pull_request["state"] == "merged" and len(card.review_reasons) == 2
    assert [reason["reviewer"] for reason in card.review_reasons] == ["alice", "alice"]
    # The merged webhook that followed Orket's own merge changed nothing more.
    assert WebhookDelivery.objects.filter(action="closed", status=DeliveryStatus.PROCESSED).exists()
    # Auto-deploy: a sandbox of the merged card runs, and its URL is on the pull request.
    running = wait_until(
        "the sandbox URL on the pull request",
        lambda: [c for c in fake.comment_bodies(number) if "Sandbox running: http://127.0.0.1:" in c],
        timeout=90,
    )
    url = running[0].split("Sandbox running: ", 1)[1].split()[0]
    assert httpx.get(url, timeout=5).text == "hello from the sandbox"
    assert loop.pull.sandbox_url == url
    assert not any("could not" in c for c in fake.comment_bodies(number))
    assert Comment.objects.filter(card=card, body__contains="Changes requested by alice").count() == 2


def test_escalation_at_cycle_3_and_a_requirements_review_at_cycle_4(loop_env: Callable[..., Loop]) -> None:
    loop = loop_env()
    fake = loop.fake
    number = loop.first_pull_request().number
    for cycle, text in enumerate(["Wrong error type.", "Still no test.", "The approach is wrong."], start=1):
        fake.review(number, "carol", "REQUEST_CHANGES", text)
        loop.settle()
        assert loop.refresh().review_cycle == cycle
    # Cycle 3: the architect seat got the turn and the pull request says so.
    comments = fake.comment_bodies(number)
    assert any("escalated to the architect (seat lead_architect)" in c for c in comments)
    architect_turns = CardHistory.objects.filter(card=loop.card, actor_seat="lead_architect", to_status="code_review")
    assert architect_turns.exists()
    assert loop.refresh().seat == "senior_developer"  # handed back after the architect's turn
    assert SeatNote.objects.filter(card=loop.card, to_seat="lead_architect", body__contains="rethink").exists()

    fake.review(number, "carol", "REQUEST_CHANGES", "Requirements are unclear.")
    loop.settle()
    card = loop.refresh()
    assert card.review_cycle == 4 and card.status == "blocked" and card.wait_reason == "input"
    assert fake.pull(number)["state"] == "closed" and not fake.pull(number)["merged"]
    assert any("closing after 4 review cycles" in c for c in fake.comment_bodies(number))
    review_card = loop.pull.requirements_card
    assert review_card is not None and review_card.epic_id == card.epic_id
    for text in ["Wrong error type.", "Still no test.", "The approach is wrong.", "Requirements are unclear."]:
        assert text in review_card.description
    [issue] = fake.issues.values()
    assert issue["title"].startswith("Requirements review") and "Requirements are unclear." in issue["body"]
    # The closed webhook that followed Orket's own close did not send the card anywhere.
    assert loop.pull.state == "closed" and loop.refresh().status == "blocked"


def test_reconciliation_applies_a_merge_whose_webhook_was_never_delivered(loop_env: Callable[..., Loop]) -> None:
    loop = loop_env()
    fake = loop.fake
    number = loop.first_pull_request().number
    fake.drop_webhooks = True
    fake.merge(number, by="dave")
    fake.wait_sent()
    assert loop.refresh().status == "code_review"
    results = services.gitea_reconcile(link=loop.link)
    assert any("merged" in line for line in results), results
    card = loop.refresh()
    assert card.status == "done" and card.pull_request["state"] == "merged"
    # Once: a second pass, and the late webhook, change nothing.
    assert services.gitea_reconcile(link=loop.link) == []
    fake.drop_webhooks = False
    fake.webhook("pull_request", "pull_request", fake.pull_payload("closed", number, "dave"))
    loop.settle()
    late = WebhookDelivery.objects.get(action="closed")
    assert late.status == DeliveryStatus.DUPLICATE
    assert CardHistory.objects.filter(card=card, event="transition", to_status="done").count() == 1


def test_reconciliation_merges_what_a_crash_after_the_approval_left_open(loop_env: Callable[..., Loop]) -> None:
    loop = loop_env(auto_merge=True)
    fake = loop.fake
    number = loop.first_pull_request().number
    # What a crash between the approval's commit and its merge task leaves: the card done, the pull open.
    finalizer = Actor.for_seat("quality_assurance", ("integrity_guard",), can_finalize=True, for_person=True)
    board_services.card_transition(card=loop.refresh(), to_status="done", actor=finalizer, reason="approved")
    assert loop.pull.state == "open" and not fake.calls_to("POST", f"/pulls/{number}/merge")
    results = services.gitea_reconcile(link=loop.link)
    assert f"Merged pull request #{number}." in results, results
    assert fake.pull(number)["merged"] is True and len(fake.calls_to("POST", f"/pulls/{number}/merge")) == 1
    loop.settle()
    assert loop.pull.state == "merged" and loop.refresh().pull_request["state"] == "merged"
    assert services.gitea_reconcile(link=loop.link) == []


def test_reconciliation_applies_a_missed_review(loop_env: Callable[..., Loop]) -> None:
    loop = loop_env()
    fake = loop.fake
    number = loop.first_pull_request().number
    fake.review(number, "erin", "REQUEST_CHANGES", "Missed by the webhook.", send=False)
    services.gitea_reconcile(link=loop.link)
    loop.settle()
    card = loop.refresh()
    assert card.review_cycle == 1 and card.review_reasons[0]["text"] == "Missed by the webhook."
