"""The webhook endpoint with every recorded payload, signed and sent with Gitea's headers; refusals;
duplicates by delivery id and by meaning."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from agents.gitea.models import DeliveryStatus, ForgeEventKey, GiteaLink, PullRequestLink, WebhookDelivery
from agents.gitea.services import MAX_BODY_BYTES, delivery_process
from agents.models import Run, SeatNote
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, CardHistory, Comment
from tests.gitea.conftest import FIXTURE_EVENTS, fixture_bytes, fixture_json
from tests.gitea.fake_gitea import signed_headers
from tests.gitea.support import link, new_card, pull_for, seeded_project, to_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(settings: Any, tmp_path: Any) -> Any:
    settings.DATA_DIR = tmp_path
    return seeded_project()


def _django_headers(headers: dict[str, str]) -> dict[str, str]:
    return {
        ("CONTENT_TYPE" if k == "Content-Type" else "HTTP_" + k.upper().replace("-", "_")): v
        for k, v in headers.items()
    }


def post(project_id: int, body: bytes, headers: dict[str, str]) -> Any:
    return Client().generic("POST", f"/hooks/gitea/{project_id}/", data=body, **_django_headers(headers))


def send(project: Any, secret: str, name: str, event: str, event_type: str, delivery: str | None = None) -> Any:
    body = fixture_bytes(name)
    return post(project.pk, body, signed_headers(secret, body, event=event, event_type=event_type, delivery=delivery))


def _setup_for(project: Any, name: str) -> tuple[str, Card, PullRequestLink | None]:
    data = fixture_json(name)
    full_name = data["repository"]["full_name"]
    _, secret = link(project, full_name=full_name, required_reviewers=[data["sender"]["login"]])
    card = to_review(new_card(project))
    number = data.get("number") or (data.get("pull_request") or {}).get("number")
    pull = pull_for(card, number) if number else None
    return secret, card, pull


def _process_all() -> list[WebhookDelivery]:
    for delivery in WebhookDelivery.objects.filter(status=DeliveryStatus.QUEUED):
        delivery_process(delivery_id=delivery.pk)
    return list(WebhookDelivery.objects.order_by("id"))


@pytest.mark.parametrize(("name", "event", "event_type"), FIXTURE_EVENTS)
def test_every_recorded_payload_is_accepted_and_handled(
    project: Any, name: str, event: str, event_type: str, django_capture_on_commit_callbacks: Any
) -> None:
    secret, card, pull = _setup_for(project, name)
    if name == "HookPullRequestReopened.json":
        card = board_services.card_transition(card=card, to_status="in_progress", actor=Actor.orket("t"))
        card = board_services.card_transition(
            card=card, to_status="waiting_for_developer", actor=Actor.orket("t"), wait_reason="input"
        )
        PullRequestLink.objects.filter(pk=pull.pk).update(state="closed")
    with django_capture_on_commit_callbacks() as callbacks:
        response = send(project, secret, name, event, event_type)
    if event == "push":
        assert response.status_code == 202 and response.json()["code"] == "ignored"
        assert not WebhookDelivery.objects.exists() and not callbacks
        return
    assert response.status_code == 202, response.content
    assert response.json()["code"] == "accepted"
    assert len(callbacks) == 1  # handed to the Celery task after commit
    delivery = WebhookDelivery.objects.get()
    data = fixture_json(name)
    assert (delivery.event, delivery.event_type, delivery.action) == (event, event_type, data["action"])
    assert delivery.delivery_id and len(delivery.payload_sha256) == 64 and delivery.received_at
    [delivery] = _process_all()
    assert delivery.status == DeliveryStatus.PROCESSED, delivery.result
    card.refresh_from_db()
    pull.refresh_from_db()
    expectations = {
        "HookPullRequest.json": lambda: card.status == "code_review",
        "HookPullRequestChangeTitle.json": lambda: card.status == "code_review",
        "HookPullRequestUpdated.json": lambda: pull.agent_review_requested and Run.objects.filter(card=card).exists(),
        "HookPullRequestClosed.json": lambda: card.status == "waiting_for_developer" and pull.state == "closed",
        "HookPullRequestMerged.json": lambda: card.status == "done" and pull.state == "merged",
        "HookPullRequestReopened.json": lambda: card.status == "code_review" and pull.state == "open",
        "HookPullRequestReviewAck.json": lambda: card.status == "done",
        "HookPullRequestReviewDeny.json": lambda: (
            card.status == "in_progress"
            and card.review_cycle == 1
            and Run.objects.filter(card=card).exists()
            and SeatNote.objects.filter(card=card, body__contains="I decided otherwhies").exists()
        ),
        "HookPullRequestReviewComment.json": lambda: Comment.objects.filter(
            card=card, body__contains="and somethimes you have to comment"
        ).exists(),
    }
    assert expectations[name](), (card.status, delivery.result)
    if card.status == "done":
        done = CardHistory.objects.get(card=card, to_status="done", event="transition")
        assert done.actor_seat == "quality_assurance" and "finalizer" in done.actor_roles
    # The card API shows the pull request and the review cycle.
    assert card.pull_request["number"] == pull.number


def test_the_same_delivery_twice_is_processed_once(project: Any) -> None:
    secret, card, _ = _setup_for(project, "HookPullRequestReviewDeny.json")
    args = ("HookPullRequestReviewDeny.json", "pull_request_rejected", "pull_request_review_rejected", "d-1")
    assert send(project, secret, *args).status_code == 202
    again = send(project, secret, *args)
    assert again.status_code == 200 and again.json()["code"] == "duplicate"
    assert WebhookDelivery.objects.count() == 1
    _process_all()
    _process_all()
    card.refresh_from_db()
    assert card.review_cycle == 1 and len(card.review_reasons) == 1
    assert Run.objects.filter(card=card).count() == 1


def test_a_replay_with_a_new_delivery_id_is_recorded_but_processed_once(project: Any) -> None:
    secret, card, _ = _setup_for(project, "HookPullRequestReviewDeny.json")
    args = ("HookPullRequestReviewDeny.json", "pull_request_rejected", "pull_request_review_rejected")
    assert send(project, secret, *args, delivery="first").status_code == 202
    replay = send(project, secret, *args, delivery="replayed")
    assert replay.status_code == 200 and replay.json()["code"] == "duplicate"
    statuses = sorted(WebhookDelivery.objects.values_list("status", flat=True))
    assert statuses == ["duplicate", "queued"]
    _process_all()
    card.refresh_from_db()
    assert card.review_cycle == 1 and Run.objects.filter(card=card).count() == 1


def test_a_replay_that_arrives_while_the_first_is_still_queued_is_processed_once(project: Any) -> None:
    """Both stored as queued (the meaning check at the door can race): the event key still holds."""
    secret, card, _ = _setup_for(project, "HookPullRequestReviewDeny.json")
    args = ("HookPullRequestReviewDeny.json", "pull_request_rejected", "pull_request_review_rejected")
    send(project, secret, *args, delivery="a")
    WebhookDelivery.objects.update(meaning_key="")  # as if the second arrived before the first was stored
    send(project, secret, *args, delivery="b")
    deliveries = _process_all()
    assert sorted(d.status for d in deliveries) == ["duplicate", "processed"]
    card.refresh_from_db()
    assert card.review_cycle == 1
    assert ForgeEventKey.objects.count() == 1


def _nothing_stored(project: Any, refused_before: int, *, counted: bool = True) -> None:
    assert not WebhookDelivery.objects.exists()
    assert not ForgeEventKey.objects.exists()
    refused = GiteaLink.objects.get(project=project).refused_deliveries
    assert refused == refused_before + (1 if counted else 0)


def test_unsigned_and_wrongly_signed_deliveries_are_refused_and_change_nothing(project: Any) -> None:
    secret, card, _ = _setup_for(project, "HookPullRequestReviewDeny.json")
    body = fixture_bytes("HookPullRequestReviewDeny.json")
    headers = signed_headers(secret, body, event="pull_request_rejected", event_type="pull_request_review_rejected")
    unsigned = {k: v for k, v in headers.items() if "Signature" not in k}
    response = post(project.pk, body, unsigned)
    assert response.status_code == 401 and response.json()["code"] == "signature_missing"
    _nothing_stored(project, 0)
    wrong = signed_headers("not-the-secret", body, event="pull_request_rejected")
    response = post(project.pk, body, wrong)
    assert response.status_code == 401 and response.json()["code"] == "signature_invalid"
    _nothing_stored(project, 1)
    card.refresh_from_db()
    assert card.status == "code_review" and card.review_cycle == 0


def test_oversized_bodies_are_refused_with_413(project: Any) -> None:
    secret, _, _ = _setup_for(project, "HookPullRequest.json")
    body = b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = post(project.pk, body, signed_headers(secret, body, event="pull_request"))
    assert response.status_code == 413
    _nothing_stored(project, 0)


def test_truncated_bodies_are_refused(project: Any) -> None:
    secret, _, _ = _setup_for(project, "HookPullRequest.json")
    body = fixture_bytes("HookPullRequest.json")
    cut = body[: len(body) // 2]
    # Signed over the whole body, cut in transit: the signature no longer matches.
    response = post(project.pk, cut, signed_headers(secret, body, event="pull_request"))
    assert response.status_code == 401
    # Signed over what arrived: the signature is right, the JSON is not.
    response = post(project.pk, cut, signed_headers(secret, cut, event="pull_request"))
    assert response.status_code == 400 and response.json()["code"] == "malformed_json"
    _nothing_stored(project, 0)


@pytest.mark.parametrize("body", [b"not json at all", b"[1, 2, 3]", b"\xff\xfe\x00", b""])
def test_non_json_bodies_are_refused_with_400(project: Any, body: bytes) -> None:
    secret, _, _ = _setup_for(project, "HookPullRequest.json")
    response = post(project.pk, body, signed_headers(secret, body, event="pull_request"))
    assert response.status_code == 400
    _nothing_stored(project, 0, counted=False)


MALFORMED_VALUES = {
    "nan": b"NaN",
    "infinity": b"-Infinity",
    "overflowing float": b"1e999",
    "huge integer": b"9" * 5000,
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "lone surrogate": b'"\\ud800"',
}


@pytest.mark.parametrize("shape", MALFORMED_VALUES)
def test_signed_payloads_that_are_not_storable_json_are_refused_as_malformed(project: Any, shape: str) -> None:
    """A real pull request payload with one value Orket cannot store (or send back) added to it."""
    secret, _, _ = _setup_for(project, "HookPullRequest.json")
    body = b'{"orket_probe": ' + MALFORMED_VALUES[shape] + b", " + fixture_bytes("HookPullRequest.json").lstrip()[1:]
    response = post(project.pk, body, signed_headers(secret, body, event="pull_request"))
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "malformed_json"
    _nothing_stored(project, 0, counted=False)


def test_unknown_projects_and_other_methods(project: Any) -> None:
    body = b"{}"
    assert post(99999, body, signed_headers("x", body, event="pull_request")).status_code == 401  # like a wrong one
    link(project)
    assert Client().get(f"/hooks/gitea/{project.pk}/").status_code == 405
    assert post(project.slug, body, {"X-Gitea-Event": "pull_request"}).status_code == 401  # by slug too


def test_a_delivery_about_another_repository_is_ignored(project: Any) -> None:
    _, secret = link(project, full_name="someone/else")
    card = to_review(new_card(project))
    pull_for(card, 7)
    send(project, secret, "HookPullRequestReviewDeny.json", "pull_request_rejected", "pull_request_review_rejected")
    [delivery] = _process_all()
    assert delivery.status == DeliveryStatus.IGNORED and "not the linked repository" in delivery.result
    card.refresh_from_db()
    assert card.status == "code_review"


def test_maintainers_reprocess_a_delivery(project: Any, member_of: Any, api_as: Any) -> None:
    secret, card, _ = _setup_for(project, "HookPullRequestReviewComment.json")
    send(project, secret, "HookPullRequestReviewComment.json", "pull_request_comment", "pull_request_review_comment")
    [delivery] = _process_all()
    member = member_of(project, "member")
    url = f"/api/projects/{project.pk}/gitea/deliveries/{delivery.pk}/reprocess/"
    assert api_as(member).post(url).status_code == 403
    maintainer = member_of(project, "maintainer")
    answer = api_as(maintainer).post(url)
    assert answer.status_code == 200 and answer.json()["status"] == "processed"
    assert Comment.objects.filter(card=card, body__contains="somethimes").count() == 2
    listed = api_as(maintainer).get(f"/api/projects/{project.pk}/gitea/deliveries/").json()
    assert listed[0]["payload"]["action"] == "reviewed"


def test_the_link_api_keeps_the_token_and_shows_the_secret_once(project: Any, member_of: Any, api_as: Any) -> None:
    maintainer = member_of(project, "maintainer")
    client = api_as(maintainer)
    data = {"base_url": "http://127.0.0.1:3000", "owner": "o", "repo": "r", "token": "s3cret-token", "max_cycles": 4}
    first = client.put(f"/api/projects/{project.pk}/gitea/", data, format="json")
    assert first.status_code == 200, first.content
    assert first.json()["webhook_secret"] and "s3cret-token" not in json.dumps(first.json())
    assert first.json()["has_token"] is True
    again = client.put(f"/api/projects/{project.pk}/gitea/", {**data, "token": ""}, format="json")
    assert "webhook_secret" not in again.json()
    saved = GiteaLink.objects.get(project=project)
    assert saved.token() == "s3cret-token" and "s3cret" not in saved.token_encrypted
    read = client.get(f"/api/projects/{project.pk}/gitea/").json()
    assert "token" not in read and "webhook_secret" not in read
    bad = client.put(f"/api/projects/{project.pk}/gitea/", {**data, "escalation_cycle": 5}, format="json")
    assert bad.status_code == 400
    member = member_of(project, "member")
    assert api_as(member).put(f"/api/projects/{project.pk}/gitea/", data, format="json").status_code == 403


def test_the_settings_page_needs_a_maintainer_and_csrf(project: Any, member_of: Any) -> None:
    maintainer = member_of(project, "maintainer")
    client = Client(enforce_csrf_checks=True)
    client.force_login(maintainer)
    page = client.get(f"/projects/{project.pk}/settings/gitea/")
    assert page.status_code == 200
    form = {"base_url": "http://127.0.0.1:3000", "owner": "o", "repo": "r", "token_env": "ORKET_SECRET_GITEA_TOKEN"}
    assert client.post(f"/projects/{project.pk}/settings/gitea/", form).status_code == 403  # no CSRF token
    token = client.cookies["csrftoken"].value
    saved = client.post(f"/projects/{project.pk}/settings/gitea/", {**form, "csrfmiddlewaretoken": token})
    assert saved.status_code == 200
    secret = saved.context["new_secret"]
    assert secret and secret in saved.content.decode()
    assert secret not in client.get(f"/projects/{project.pk}/settings/gitea/").content.decode()
    viewer = member_of(project, "viewer")
    other = Client()
    other.force_login(viewer)
    assert other.post(f"/projects/{project.pk}/settings/gitea/", form).status_code == 403
    assert other.get(f"/projects/{project.pk}/gitea/deliveries/").status_code == 200


def test_the_deliveries_page_lists_and_reprocesses(project: Any, member_of: Any) -> None:
    secret, card, _ = _setup_for(project, "HookPullRequestReviewComment.json")
    send(project, secret, "HookPullRequestReviewComment.json", "pull_request_comment", "pull_request_review_comment")
    [delivery] = _process_all()
    client = Client()
    client.force_login(member_of(project, "maintainer"))
    page = client.get(f"/projects/{project.pk}/gitea/deliveries/")
    assert page.status_code == 200
    text = page.content.decode()
    assert delivery.delivery_id in text and "Review comment by a_nice_user" in text and "Re-process" in text
    again = client.post(f"/projects/{project.pk}/gitea/deliveries/{delivery.pk}/reprocess/")
    assert again.status_code == 302
    assert Comment.objects.filter(card=card, body__contains="somethimes").count() == 2
    viewer = Client()
    viewer.force_login(member_of(project, "viewer"))
    assert "Re-process" not in viewer.get(f"/projects/{project.pk}/gitea/deliveries/").content.decode()
    assert viewer.post(f"/projects/{project.pk}/gitea/deliveries/{delivery.pk}/reprocess/").status_code == 403


def test_a_card_finished_in_gitea_lets_the_rest_of_its_epic_run(project: Any) -> None:
    secret, card, _ = _setup_for(project, "HookPullRequestReviewAck.json")
    follower = new_card(project, title="Use the greeting endpoint")
    board_services.dependency_add(card=follower, depends_on=card, actor=Actor.orket("t"))
    send(project, secret, "HookPullRequestReviewAck.json", "pull_request_approved", "pull_request_review_approved")
    _process_all()
    card.refresh_from_db()
    assert card.status == "done"
    assert Run.objects.filter(epic=card.epic, card=None, status="queued").exists()


def test_an_approval_cannot_finish_a_card_whose_verification_failed(project: Any) -> None:
    secret, card, _ = _setup_for(project, "HookPullRequestReviewAck.json")
    board_services.card_record_verification(card=card, result="failed", actor=Actor.orket("t"))
    send(project, secret, "HookPullRequestReviewAck.json", "pull_request_approved", "pull_request_review_approved")
    [delivery] = _process_all()
    card.refresh_from_db()
    assert card.status == "code_review"
    assert "could not finish" in delivery.result and "verification" in delivery.result.lower()
    assert Comment.objects.filter(card=card, body__startswith="Not finished").exists()


def test_reconciliation_is_on_the_beat_and_its_task_is_registered(settings: Any) -> None:
    from orket_site.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["gitea-reconcile"]
    assert entry["task"] == "agents.gitea_reconcile_all" and entry["schedule"] > 0
    app.loader.import_default_modules()
    for name in ("agents.gitea_reconcile_all", "agents.gitea_delivery_process", "agents.gitea_pull_request_open"):
        assert name in app.tasks
