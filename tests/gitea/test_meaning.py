"""Signatures and payload meaning, without Django: every recorded Gitea payload is understood."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from agents.gitea import payloads
from agents.gitea.signatures import sign, signature_valid
from tests.gitea.conftest import FIXTURE_EVENTS, fixture_json

SECRET = "test-secret"


def test_signature_is_hex_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"a": 1}'
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body) == expected
    assert signature_valid(SECRET, body, expected)
    assert signature_valid(SECRET, body, f"sha256={expected}")
    assert signature_valid(SECRET, body, expected.upper())


@pytest.mark.parametrize(
    "signature",
    ["", "abc", "sha256=", "0" * 64, "\u00e9" * 64],
)
def test_wrong_or_missing_signatures_are_refused(signature: str) -> None:
    assert not signature_valid(SECRET, b"{}", signature)


def test_a_signature_for_another_body_or_secret_is_refused() -> None:
    good = sign(SECRET, b"{}")
    assert not signature_valid(SECRET, b"{} ", good)
    assert not signature_valid("other", b"{}", good)
    assert not signature_valid("", b"{}", sign("", b"{}"))


EXPECTED = {
    "HookPullRequest.json": (payloads.OPENED, "gordon/hello-world", 1),
    "HookPullRequestUpdated.json": (payloads.SYNCHRONIZED, "test-ci/multi-line-secrets", 2),
    "HookPullRequestChangeTitle.json": (payloads.EDITED, "a_nice_user/hello_world_ci", 7),
    "HookPullRequestClosed.json": (payloads.CLOSED, "anbraten/test-repo", 1),
    "HookPullRequestMerged.json": (payloads.MERGED, "anbraten/test-repo", 1),
    "HookPullRequestReopened.json": (payloads.REOPENED, "test_it/test_ci_thing", 1),
    "HookPullRequestReviewAck.json": (payloads.APPROVED, "a_nice_user/hello_world_ci", 7),
    "HookPullRequestReviewDeny.json": (payloads.REJECTED, "a_nice_user/hello_world_ci", 7),
    "HookPullRequestReviewComment.json": (payloads.REVIEW_COMMENT, "a_nice_user/hello_world_ci", 7),
}


@pytest.mark.parametrize(("name", "event", "event_type"), [f for f in FIXTURE_EVENTS if f[1] != "push"])
def test_every_recorded_pull_request_payload_is_understood(name: str, event: str, event_type: str) -> None:
    meaning = payloads.interpret(event, event_type, fixture_json(name))
    kind, repository, number = EXPECTED[name]
    assert (meaning.kind, meaning.repository, meaning.number) == (kind, repository, number)
    assert meaning.head_sha and len(meaning.head_sha) == 40
    assert meaning.sender
    if kind in (payloads.APPROVED, payloads.REJECTED, payloads.REVIEW_COMMENT):
        assert meaning.text


def test_pushes_are_not_events_orket_uses() -> None:
    assert "push" not in payloads.USED_EVENTS


def test_keys_say_what_happened_not_which_delivery() -> None:
    merged = payloads.interpret("pull_request", "pull_request", fixture_json("HookPullRequestMerged.json"))
    closed = payloads.interpret("pull_request", "pull_request", fixture_json("HookPullRequestClosed.json"))
    assert merged.key != closed.key
    assert (
        merged.key == payloads.interpret("pull_request", "pull_request", fixture_json("HookPullRequestMerged.json")).key
    )
    approve = payloads.interpret(
        "pull_request_approved", "pull_request_review_approved", fixture_json("HookPullRequestReviewAck.json")
    )
    deny = payloads.interpret(
        "pull_request_rejected", "pull_request_review_rejected", fixture_json("HookPullRequestReviewDeny.json")
    )
    assert approve.key != deny.key


def test_a_review_read_from_the_api_has_the_key_of_its_webhook() -> None:
    data = fixture_json("HookPullRequestReviewDeny.json")
    hook = payloads.interpret("pull_request_rejected", "pull_request_review_rejected", data)
    api = payloads.from_api_review(
        data["repository"]["full_name"],
        7,
        {
            "id": 9,
            "state": "REQUEST_CHANGES",
            "body": data["review"]["content"],
            "commit_id": data["pull_request"]["head"]["sha"],
            "user": {"login": data["sender"]["login"]},
        },
    )
    assert api.kind == payloads.REJECTED and api.key == hook.key


def test_a_merge_read_from_the_api_has_the_key_of_its_webhook() -> None:
    data = fixture_json("HookPullRequestMerged.json")
    hook = payloads.interpret("pull_request", "pull_request", data)
    api = payloads.from_api_pull(data["repository"]["full_name"], data["pull_request"])
    assert api.kind == payloads.MERGED and api.key == hook.key


@pytest.mark.parametrize("payload", [{}, {"repository": {}}, {"repository": {"full_name": "a/b"}, "action": "opened"}])
def test_payloads_without_what_they_must_carry_are_invalid(payload: dict) -> None:
    with pytest.raises(payloads.PayloadInvalid):
        payloads.interpret("pull_request", "pull_request", payload)


def test_signatures_payloads_client_and_git_import_without_django() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "import agents.gitea.signatures, agents.gitea.payloads, agents.gitea.client, agents.gitea.git_remote\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not loaded, loaded\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
