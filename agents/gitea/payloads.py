"""What a Gitea webhook (or a pull request read back from the API) means to Orket. No Django, no I/O.

`interpret(event, event_type, payload)` turns a delivery into a `ForgeEvent`: which repository and
pull request, what happened (opened, synchronized, edited, closed, merged, reopened, approved,
rejected, review comment, comment), the head commit, who did it and what they wrote. Its `key` is the
deduplication key by meaning: the same happening gives the same key whether it comes from a delivery,
from Gitea's Replay (which sends a new delivery id) or from reconciliation reading the API.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

# X-Gitea-Event values Orket acts on; anything else is answered 202 and ignored.
USED_EVENTS = frozenset(
    {
        "pull_request",
        "pull_request_approved",
        "pull_request_rejected",
        "pull_request_comment",
        "pull_request_review",
        "pull_request_sync",
        "issue_comment",
    }
)

OPENED = "opened"
SYNCHRONIZED = "synchronized"
EDITED = "edited"
CLOSED = "closed"
MERGED = "merged"
REOPENED = "reopened"
APPROVED = "approved"
REJECTED = "rejected"
REVIEW_COMMENT = "review_comment"
COMMENT = "comment"
OTHER = "other"

# review.type in webhooks, and the review `state` of the REST API, to one word.
_REVIEW_TYPES = {
    "pull_request_review_approved": APPROVED,
    "pull_request_review_rejected": REJECTED,
    "pull_request_review_comment": REVIEW_COMMENT,
    "approved": APPROVED,
    "request_changes": REJECTED,
    "rejected": REJECTED,
    "comment": REVIEW_COMMENT,
}
_EVENT_REVIEW_KINDS = {
    "pull_request_approved": APPROVED,
    "pull_request_rejected": REJECTED,
    "pull_request_comment": REVIEW_COMMENT,
}


class PayloadInvalid(ValueError):
    """The payload lacks what its event must carry."""


@dataclass(frozen=True)
class ForgeEvent:
    kind: str
    action: str
    repository: str  # owner/name, lower case
    number: int | None
    head_sha: str = ""
    head_ref: str = ""
    sender: str = ""
    text: str = ""
    merged: bool = False
    merge_sha: str = ""
    title: str = ""
    html_url: str = ""
    comment_id: int | None = None
    review_id: int | None = None

    @property
    def key(self) -> str:
        """Deduplication by meaning: repository, pull request, what happened, head commit or review."""
        base = f"{self.repository}#{self.number}"
        if self.kind in (APPROVED, REJECTED, REVIEW_COMMENT):
            digest = hashlib.sha256(self.text.strip().encode()).hexdigest()[:16]
            return f"{base}:review:{self.kind}:{self.sender.lower()}:{self.head_sha}:{digest}"
        if self.kind == COMMENT:
            return f"{base}:comment:{self.comment_id}"
        if self.kind == EDITED:
            digest = hashlib.sha256(self.title.encode()).hexdigest()[:16]
            return f"{base}:edited:{digest}"
        return f"{base}:{self.kind}:{self.head_sha}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def repository_name(payload: dict[str, Any]) -> str:
    repo = _dict(payload.get("repository"))
    full = _text(repo.get("full_name"))
    if not full:
        owner = _dict(repo.get("owner"))
        login = _text(owner.get("login")) or _text(owner.get("username"))
        full = f"{login}/{_text(repo.get('name'))}" if login else ""
    return full.lower()


def _login(user: Any) -> str:
    user = _dict(user)
    return _text(user.get("login")) or _text(user.get("username"))


def interpret(event: str, event_type: str, payload: dict[str, Any]) -> ForgeEvent:
    """The meaning of one delivery. Raises PayloadInvalid when the payload lacks what it must carry."""
    if not isinstance(payload, dict):
        raise PayloadInvalid("The payload is not a JSON object.")
    action = _text(payload.get("action"))
    repository = repository_name(payload)
    if not repository:
        raise PayloadInvalid("The payload names no repository.")
    sender = _login(payload.get("sender"))
    if event == "issue_comment" or (payload.get("comment") and not payload.get("pull_request")):
        issue = _dict(payload.get("issue"))
        comment = _dict(payload.get("comment"))
        is_pull = bool(issue.get("pull_request")) or bool(payload.get("is_pull"))
        return ForgeEvent(
            kind=COMMENT if is_pull else OTHER,
            action=action,
            repository=repository,
            number=_int(issue.get("number")),
            sender=_login(comment.get("user")) or sender,
            text=_text(comment.get("body")),
            comment_id=_int(comment.get("id")),
            html_url=_text(comment.get("html_url")),
        )
    pull = _dict(payload.get("pull_request"))
    if not pull:
        raise PayloadInvalid(f"A {event} event without a pull_request object.")
    number = _int(payload.get("number")) or _int(pull.get("number"))
    if number is None:
        raise PayloadInvalid("The payload names no pull request number.")
    head = _dict(pull.get("head"))
    common = {
        "action": action,
        "repository": repository,
        "number": number,
        "head_sha": _text(head.get("sha")),
        "head_ref": _text(head.get("ref")),
        "sender": sender,
        "title": _text(pull.get("title")),
        "html_url": _text(pull.get("html_url")),
    }
    review = _dict(payload.get("review"))
    if action == "reviewed" or review or event in _EVENT_REVIEW_KINDS:
        kind = _REVIEW_TYPES.get(_text(review.get("type")).lower()) or _EVENT_REVIEW_KINDS.get(event, OTHER)
        if event_type.endswith("_approved"):
            kind = APPROVED
        elif event_type.endswith("_rejected"):
            kind = REJECTED
        return ForgeEvent(kind=kind, text=_text(review.get("content")), **common)
    if action == "closed":
        merged = bool(pull.get("merged"))
        return ForgeEvent(
            kind=MERGED if merged else CLOSED, merged=merged, merge_sha=_text(pull.get("merge_commit_sha")), **common
        )
    kind = {
        "opened": OPENED,
        "synchronized": SYNCHRONIZED,
        "edited": EDITED,
        "reopened": REOPENED,
    }.get(action, OTHER)
    return ForgeEvent(kind=kind, **common)


def from_api_pull(repository: str, pull: dict[str, Any]) -> ForgeEvent:
    """A pull request read from the API, as the event that put it in its current state (for closed
    and merged pull requests; open ones give kind `opened`)."""
    head = _dict(pull.get("head"))
    merged = bool(pull.get("merged"))
    state = _text(pull.get("state"))
    kind = MERGED if merged else CLOSED if state == "closed" else OPENED
    return ForgeEvent(
        kind=kind,
        action="closed" if state == "closed" else "opened",
        repository=repository.lower(),
        number=_int(pull.get("number")),
        head_sha=_text(head.get("sha")),
        head_ref=_text(head.get("ref")),
        sender=_login(pull.get("merged_by")) or _login(pull.get("user")),
        merged=merged,
        merge_sha=_text(pull.get("merge_commit_sha")),
        title=_text(pull.get("title")),
        html_url=_text(pull.get("html_url")),
    )


def from_api_review(repository: str, number: int, review: dict[str, Any]) -> ForgeEvent:
    """A review read from GET /pulls/{n}/reviews, as the webhook of it would mean."""
    state = _text(review.get("state")).lower()
    return ForgeEvent(
        kind=_REVIEW_TYPES.get(state, OTHER),
        action="reviewed",
        repository=repository.lower(),
        number=number,
        head_sha=_text(review.get("commit_id")),
        sender=_login(review.get("user")),
        text=_text(review.get("body")),
        review_id=_int(review.get("id")),
    )
