from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gitea.fake_gitea import FakeGitea

# Copies of the recorded payloads of ../shared/fixtures/gitea (see the README beside them), kept in
# the repository so the tests do not depend on where a clone sits.
FIXTURES = Path(__file__).resolve().parent / "payloads"

# (file, X-Gitea-Event, X-Gitea-Event-Type), as the fixtures' README lists them.
FIXTURE_EVENTS = [
    ("HookPullRequest.json", "pull_request", "pull_request"),
    ("HookPullRequestUpdated.json", "pull_request", "pull_request_sync"),
    ("HookPullRequestChangeTitle.json", "pull_request", "pull_request"),
    ("HookPullRequestClosed.json", "pull_request", "pull_request"),
    ("HookPullRequestMerged.json", "pull_request", "pull_request"),
    ("HookPullRequestReopened.json", "pull_request", "pull_request"),
    ("HookPullRequestReviewAck.json", "pull_request_approved", "pull_request_review_approved"),
    ("HookPullRequestReviewDeny.json", "pull_request_rejected", "pull_request_review_rejected"),
    ("HookPullRequestReviewComment.json", "pull_request_comment", "pull_request_review_comment"),
    ("HookPush.json", "push", "push"),
    ("HookPushBranch.json", "push", "push"),
]


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict[str, Any]:
    return json.loads(fixture_bytes(name))


@pytest.fixture
def fake_gitea() -> Iterator[FakeGitea]:
    with FakeGitea() as fake:
        yield fake


@pytest.fixture
def load_fixture() -> Callable[[str], bytes]:
    return fixture_bytes
