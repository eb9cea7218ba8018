"""Services of the Gitea integration: linking, receiving and processing webhook deliveries, the
review loop, pull requests for cards, and reconciliation. Card changes go through boards.services;
turns are started through the engine's run_start. See docs/gitea.md for the rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents import dispatch, engine, outbound_policy, selectors
from agents import services as agents_services
from agents.errors import (
    DeliveryMalformed,
    DeliveryRefused,
    DeliverySignatureInvalid,
    DeliveryTooLarge,
    DeliveryUnsigned,
    EngineError,
    GiteaLinkInvalid,
)
from agents.gitea import git_remote, payloads
from agents.gitea.client import GiteaClient, GiteaError
from agents.gitea.crypto import encrypt
from agents.gitea.hooks import ORKET
from agents.gitea.models import (
    DeliveryStatus,
    ForgeEventKey,
    GiteaLink,
    PullRequestLink,
    PullRequestState,
    WebhookDelivery,
)
from agents.gitea.signatures import new_secret, payload_hash, signature_valid
from agents.models import Role, Run, Turn
from agents.notes import seat_note_add
from agents.sources import services as source_services
from agents.workspaces import ProjectWorkspace
from boards import machine
from boards import services as board_services
from boards.actors import Actor
from boards.models import TITLE_MAX, Card, Project
from boards.selectors import epic_schedule
from orket_site import untrusted_json
from orket_site.errors import OrketError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
COMMENT_MARK = "**Orket**"
REQUIREMENTS_LABEL = "requirements-review"


# ---------------------------------------------------------------------------------------------
# Linking
# ---------------------------------------------------------------------------------------------


@dataclass
class LinkSaved:
    link: GiteaLink
    new_secret: str  # the webhook secret when one was generated now (shown once), else ""


def gitea_link_save(
    *,
    project: Project,
    base_url: str,
    owner: str,
    repo: str,
    base_branch: str = "main",
    token_env: str = "",
    token: str = "",
    required_reviewers: list[str] | None = None,
    required_approvals: int = 1,
    auto_merge: bool = False,
    auto_deploy: bool = False,
    escalation_cycle: int = 3,
    max_cycles: int = 4,
    enabled: bool = True,
    regenerate_secret: bool = False,
) -> LinkSaved:
    """Create or update the project's link. A blank `token` keeps the stored one, unless the base URL,
    owner or repository change: then the stored token and the webhook secret do not follow (a new
    secret is generated) unless a token or token variable comes with the change. Naming `token_env`
    (an ORKET_SECRET_ variable) drops any stored token. The base URL must be a host the operator
    allows. The webhook secret is generated on first save (or on request) and returned once."""
    problems = []
    base_url = base_url.strip().rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        problems.append("The Gitea base URL must start with http:// or https://.")
    owner, repo = owner.strip(), repo.strip()
    if not owner or not repo or "/" in owner or "/" in repo:
        problems.append("Give the repository as an owner and a name, without slashes.")
    if required_approvals < 1:
        problems.append("At least one approval is required.")
    if escalation_cycle < 1 or max_cycles < 1:
        problems.append("Review cycles count from 1.")
    elif escalation_cycle > max_cycles:
        problems.append("The escalation cycle cannot come after the maximum cycle.")
    if problems:
        raise GiteaLinkInvalid(" ".join(problems))
    token_env = outbound_policy.secret_variable_check(token_env)
    outbound_policy.url_check(base_url)  # may resolve the host name: before the transaction
    with transaction.atomic():
        return _link_write(
            project=project,
            base_url=base_url,
            owner=owner,
            repo=repo,
            base_branch=base_branch,
            token_env=token_env,
            token=token.strip(),
            policy={
                "required_reviewers": [name.strip() for name in required_reviewers or [] if name.strip()],
                "required_approvals": required_approvals,
                "auto_merge": auto_merge,
                "auto_deploy": auto_deploy,
                "escalation_cycle": escalation_cycle,
                "max_cycles": max_cycles,
                "enabled": enabled,
            },
            regenerate_secret=regenerate_secret,
        )


def _link_write(
    *,
    project: Project,
    base_url: str,
    owner: str,
    repo: str,
    base_branch: str,
    token_env: str,
    token: str,
    policy: dict[str, Any],
    regenerate_secret: bool,
) -> LinkSaved:
    link = GiteaLink.objects.select_for_update().filter(project=project).first() or GiteaLink(project=project)
    moved = link.pk is not None and (link.base_url, link.owner, link.repo) != (base_url, owner, repo)
    link.base_url, link.owner, link.repo = base_url, owner, repo
    link.base_branch = base_branch.strip() or "main"
    link.token_env = token_env
    if link.token_env or (moved and not token):
        link.token_encrypted = ""
    if token and not link.token_env:
        link.token_encrypted = encrypt(token)
    if moved and not (token or token_env):  # the secret Gitea signs with does not follow either
        link.webhook_secret_encrypted = ""
    for field, value in policy.items():
        setattr(link, field, value)
    secret = ""
    if regenerate_secret or not link.webhook_secret_encrypted:
        secret = new_secret()
        link.webhook_secret_encrypted = encrypt(secret)
    link.save()
    logger.info("gitea link of project %s saved (%s)", project.pk, link)
    return LinkSaved(link, secret)


def client_for(link: GiteaLink, **options: Any) -> GiteaClient:
    """An API client whose connections follow the operator's outbound policy (checked on connect)."""
    options = {**outbound_policy.http_client_options(), **options}
    return GiteaClient(link.base_url, link.owner, link.repo, token=link.token(), **options)


# ---------------------------------------------------------------------------------------------
# Receiving deliveries (the webhook endpoint's one service; it must answer in milliseconds)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A delivery that was taken: `code` is accepted, ignored (an event Orket does not use) or duplicate."""

    code: str
    detail: str
    delivery_id: int | None = None


def _refuse(link: GiteaLink | None, error: DeliveryRefused) -> DeliveryRefused:
    """A refusal that reads the same whether or not the project exists and is linked, and writes
    nothing to the database (the count lives in the cache)."""
    if link is not None:
        link.refused_count()
    return error


def delivery_refuse_too_large(*, link: GiteaLink | None) -> NoReturn:
    raise _refuse(link, DeliveryTooLarge(f"The body is larger than {MAX_BODY_BYTES} bytes."))


def _delivery_check(*, link: GiteaLink | None, headers: dict[str, str], body: bytes) -> tuple[GiteaLink, Any]:
    """The linked project and the JSON object of a delivery whose size and signature are right."""
    if len(body) > MAX_BODY_BYTES:
        delivery_refuse_too_large(link=link)
    signature = headers.get("x-gitea-signature") or headers.get("x-hub-signature-256") or ""
    if not signature:
        raise _refuse(link, DeliveryUnsigned("The delivery is not signed (X-Gitea-Signature)."))
    secret = link.webhook_secret() if link is not None else new_secret()  # a secret nobody knows
    valid = signature_valid(secret, body, signature)  # compared either way, so both take as long
    if link is None or not valid:
        raise _refuse(link, DeliverySignatureInvalid("The signature does not match the body and the secret."))
    try:
        payload = untrusted_json.loads(body)
    except untrusted_json.MalformedJSON as error:
        raise DeliveryMalformed(f"The body is not acceptable JSON: {error.message}") from None
    if not isinstance(payload, dict):
        raise DeliveryMalformed("The body is not a JSON object.")
    return link, payload


def delivery_receive(*, link: GiteaLink | None, headers: dict[str, str], body: bytes) -> Received:
    """Check, store and queue one delivery. The body was read with its size capped by the caller.
    `link` is None when the project does not exist or is not linked: the caller is answered exactly
    as one without the right signature, so the endpoint does not tell which projects exist.
    Raises a DeliveryRefused when the delivery is not taken."""
    link, payload = _delivery_check(link=link, headers=headers, body=body)
    event = headers.get("x-gitea-event") or headers.get("x-gogs-event") or headers.get("x-github-event") or ""
    event_type = headers.get("x-gitea-event-type") or event
    if event not in payloads.USED_EVENTS:
        return Received("ignored", f"Orket does not use {event or 'unnamed'} events.")
    digest = payload_hash(body)
    delivery_id = (headers.get("x-gitea-delivery") or headers.get("x-gogs-delivery") or "")[:100] or f"sha256:{digest}"
    try:
        meaning = payloads.interpret(event, event_type, payload).key
    except payloads.PayloadInvalid as error:
        raise DeliveryMalformed(str(error), code="payload_invalid") from None
    duplicate = (
        WebhookDelivery.objects.filter(project_id=link.project_id, meaning_key=meaning)
        .exclude(status__in=[DeliveryStatus.FAILED, DeliveryStatus.IGNORED])
        .exists()
    )
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                project_id=link.project_id,
                delivery_id=delivery_id,
                event=event[:60],
                event_type=event_type[:80],
                action=str(payload.get("action") or "")[:40],
                payload=payload,
                payload_sha256=digest,
                meaning_key=meaning[:400],
                status=DeliveryStatus.DUPLICATE if duplicate else DeliveryStatus.QUEUED,
                result="Same meaning as an earlier delivery (a replay); not processed again." if duplicate else "",
            )
            if not duplicate:
                dispatch.gitea_delivery_process_after_commit(delivery_id=delivery.pk)
    except IntegrityError:
        return Received("duplicate", f"Delivery {delivery_id} was received before; it is processed once.")
    if duplicate:
        return Received("duplicate", "An earlier delivery meant the same; this one is recorded only.", delivery.pk)
    return Received("accepted", "Stored; it will be processed shortly.", delivery.pk)


# ---------------------------------------------------------------------------------------------
# Processing deliveries
# ---------------------------------------------------------------------------------------------


class Skip(Exception):
    """Processing found nothing to do; the message says why."""


def delivery_process(*, delivery_id: int, force: bool = False) -> WebhookDelivery:
    """Process one stored delivery once. `force` (the maintainers' re-process action) runs it again
    even when it was processed, or when an earlier delivery with the same meaning was."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status != DeliveryStatus.QUEUED and not force:
            return delivery
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
    link = GiteaLink.objects.filter(project_id=delivery.project_id).first()
    status, result = DeliveryStatus.PROCESSED, ""
    try:
        if link is None:
            raise Skip("The project is no longer linked to Gitea.")
        event = payloads.interpret(delivery.event, delivery.event_type, delivery.payload)
        result = event_apply(link=link, event=event, delivery=delivery, force=force)
    except Skip as skipped:
        status, result = DeliveryStatus.IGNORED, str(skipped)
    except _Duplicate as duplicate:
        status, result = DeliveryStatus.DUPLICATE, str(duplicate)
    except (payloads.PayloadInvalid, GiteaError, git_remote.PushFailed, OrketError) as error:
        status, result = DeliveryStatus.FAILED, f"{type(error).__name__}: {getattr(error, 'message', None) or error}"
    except Exception as error:  # a bug must leave a readable result, not a stuck row
        logger.exception("gitea delivery %s failed", delivery_id)
        status, result = DeliveryStatus.FAILED, f"Orket failed: {type(error).__name__}: {error}"
    WebhookDelivery.objects.filter(pk=delivery_id).update(
        status=status, result=result[:10_000], processed_at=timezone.now()
    )
    delivery.refresh_from_db()
    return delivery


class _Duplicate(Exception):
    pass


def event_apply(
    *,
    link: GiteaLink,
    event: payloads.ForgeEvent,
    delivery: WebhookDelivery | None = None,
    source: str = "webhook",
    force: bool = False,
) -> str:
    """Apply one forge event (from a delivery or from reconciliation) once, in one transaction."""
    if event.repository != link.full_name:
        raise Skip(f"The event is about {event.repository}, not the linked repository {link.full_name}.")
    if event.kind == payloads.OTHER:
        raise Skip(f"Orket does nothing on {event.action or 'this'} events.")
    with transaction.atomic():
        try:
            with transaction.atomic():
                ForgeEventKey.objects.create(
                    project_id=link.project_id, key=event.key[:400], delivery=delivery, source=source
                )
        except IntegrityError:
            if not force:
                raise _Duplicate("This happening was processed before (same meaning); not processed again.") from None
        pull = (
            PullRequestLink.objects.select_for_update()
            .select_related("card")
            .filter(project_id=link.project_id, number=event.number)
            .first()
        )
        if pull is None:
            raise Skip(f"Pull request #{event.number} is not one Orket opened for a card; recorded only.")
        handler = _HANDLERS[event.kind]
        return handler(link, pull, event)


# -- handlers: each returns a sentence saying what it did --------------------------------------------


def _card(pull: PullRequestLink) -> Card:
    return Card.objects.select_related("epic", "project").get(pk=pull.card_id)


def _record_pull(card: Card, pull: PullRequestLink) -> None:
    board_services.card_review_record(
        card=card,
        actor=ORKET,
        pull_request={"number": pull.number, "url": pull.url, "state": pull.state},
        review_cycle=pull.review_cycle,
    )


def _on_opened(link: GiteaLink, pull: PullRequestLink, event: payloads.ForgeEvent) -> str:
    if event.head_sha and not pull.head_sha:
        pull.head_sha = event.head_sha
        pull.save(update_fields=["head_sha", "updated_at"])
    return f"Pull request #{pull.number} of card #{pull.card_id} is open."


def _on_edited(link: GiteaLink, pull: PullRequestLink, event: payloads.ForgeEvent) -> str:
    return f"Pull request #{pull.number} was edited (title {event.title!r}); nothing to do."


def _on_synchronized(link: GiteaLink, pull: PullRequestLink, event: payloads.ForgeEvent) -> str:
    pull.head_sha = event.head_sha or pull.head_sha
    pull.save(update_fields=["head_sha", "updated_at"])
    if event.head_sha and event.head_sha == pull.last_pushed_sha:
        return f"New commits on #{pull.number} are Orket's own push ({event.head_sha[:10]}); nothing to do."
    card = _card(pull)
    if pull.state != PullRequestState.OPEN:
        raise Skip(f"Pull request #{pull.number} is {pull.state}; new commits change nothing.")
    if card.status != machine.CODE_REVIEW:
        return f"{event.sender} pushed to #{pull.number} while card #{card.pk} is {card.status}; recorded only."
    pull.agent_review_requested = True
    pull.save(update_fields=["agent_review_requested", "updated_at"])
    board_services.comment_add(
        card=card,
        actor=ORKET,
        body=f"{event.sender or 'Someone'} pushed commits to pull request #{pull.number} "
        f"({event.head_sha[:10]}); the agents review them.",
    )
    guard = _seat_with_role(card, finalizing=True)
    if guard:
        seat_note_add(
            card_id=card.pk,
            from_seat="orket",
            to_seat=guard,
            body=f"{event.sender} pushed commits to pull request #{pull.number}. People approve this card in "
            "Gitea, so you cannot move it to done: review the new commits, and move the card to in_progress "
            "with a note to its seat if they need changes; otherwise report what you found in a comment.",
        )
    _after_commit_fetch(link, pull.pk, event.head_sha)
    started = _start_work(card, "new commits by a person on the pull request")
    return (
        f"{event.sender} pushed {event.head_sha[:10]} to #{pull.number}: review turn for card #{card.pk} ({started})."
    )


def _counted_approvers(link: GiteaLink, pull: PullRequestLink) -> list[str]:
    required = set(link.reviewers())
    current = pull.head_sha
    return sorted(
        login
        for login, sha in (pull.approvals or {}).items()
        if (not required or login in required) and (not current or not sha or sha == current)
    )


def _on_approved(link: GiteaLink, pull: PullRequestLink, event: payloads.ForgeEvent) -> str:
    reviewer = event.sender.lower()
    if event.head_sha:
        pull.head_sha = pull.head_sha or event.head_sha
    approvals = dict(pull.approvals or {})
    approvals[reviewer] = event.head_sha
    pull.approvals = approvals
    pull.save(update_fields=["approvals", "head_sha", "updated_at"])
    card = _card(pull)
    required = link.reviewers()
    if required and reviewer not in required:
        board_services.comment_add(
            card=card,
            actor=ORKET,
            body=f"{event.sender} approved pull request #{pull.number} (not a required reviewer).",
        )
        return f"Approval by {event.sender}, who is not a required reviewer ({', '.join(required)}): recorded only."
    counted = _counted_approvers(link, pull)
    if len(counted) < link.required_approvals:
        return f"Approval by {event.sender}: {len(counted)} of {link.required_approvals} required approvals."
    if card.status == machine.DONE:
        outcome = f"Card #{card.pk} is already done."
    elif card.status != machine.CODE_REVIEW:
        return f"Approval by {event.sender}, but card #{card.pk} is {card.status}, not in review; recorded only."
    else:
        refused = _finalize(card, f"Approved in Gitea by {', '.join(counted)} (pull request #{pull.number}).")
        if refused:
            _comment_later(link, pull.number, f"The card cannot be finished yet: {refused}")
            return f"Approved, but the integrity guard could not finish card #{card.pk}: {refused}"
        outcome = f"Approved by {', '.join(counted)}; the integrity guard finished card #{card.pk}."
    if link.auto_merge and pull.state == PullRequestState.OPEN:
        _merge_later(link, pull)
        outcome += f" Merging pull request #{pull.number}."
    return outcome


def _merge_later(link: GiteaLink, pull: PullRequestLink) -> None:
    """The merge is a call to Gitea, so it runs after commit in a task, never under the row locks of
    event_apply; reconciliation merges what a crash in between left approved but open."""
    dispatch.gitea_pull_request_merge_after_commit(link_id=link.pk, pull_id=pull.pk)


def pull_request_merge(*, link_id: int, pull_id: int) -> str:
    """Merge an approved pull request in Gitea (no transaction open), then record it in one short
    transaction, unless the merged webhook was recorded first."""
    link = GiteaLink.objects.get(pk=link_id)
    pull = PullRequestLink.objects.get(pk=pull_id)
    if pull.state != PullRequestState.OPEN:
        return f"Pull request #{pull.number} is {pull.state}; nothing to merge."
    card = _card(pull)
    client = client_for(link)
    try:
        client.pull_merge(pull.number, message=f"card {card.pk}: {card.title}")
    finally:
        client.close()
    with transaction.atomic():
        pull = PullRequestLink.objects.select_for_update().get(pk=pull_id)
        if pull.state != PullRequestState.OPEN:
            return f"Merged pull request #{pull.number}; its merged event was recorded first."
        pull.state = PullRequestState.MERGED
        pull.save(update_fields=["state", "updated_at"])
        card = _card(pull)
        _record_pull(card, pull)
        _merge_workspace_later(card.project_id, card.pk)
        _deploy(link, pull, card)
    return f"Merged pull request #{pull.number}."


def _merges_left_undone(link: GiteaLink) -> list[str]:
    """Approved pull requests of finished cards that a crash left open: merge them now."""
    if not link.auto_merge:
        return []
    done: list[str] = []
    pending = PullRequestLink.objects.filter(
        project_id=link.project_id, state=PullRequestState.OPEN, card__status=machine.DONE
    )
    for pull_id in pending.values_list("pk", flat=True):
        try:
            done.append(pull_request_merge(link_id=link.pk, pull_id=pull_id))
        except GiteaError as error:
            done.append(f"Pull request {pull_id} not merged: {error}")
    return done


def _finalize(card: Card, reason: str) -> str:
    """The integrity guard moves the card to done; the refusal's sentence when the rules forbid it."""
    try:
        choice = engine.choose_seat(selectors.team_for(card.epic), card)
    except OrketError as error:
        return error.message
    actor = Actor.for_seat(choice.seat.name, (choice.role.name,), can_finalize=True, for_person=True)
    try:
        with transaction.atomic():
            board_services.card_transition(card=card, to_status=machine.DONE, actor=actor, reason=reason)
    except OrketError as refused:
        board_services.comment_add(card=card, actor=ORKET, body=f"Not finished: {refused.message}")
        return refused.message
    _continue_epic(card)
    return ""


def _continue_epic(card: Card) -> None:
    """A card finished in Gitea may unblock others of its epic: run the epic when ready cards are now
    runnable and no run of it is active."""
    ready = set(Card.objects.filter(epic_id=card.epic_id, status=machine.READY).values_list("pk", flat=True))
    if not ready or not ready & set(epic_schedule(card.epic)):
        return
    if Run.objects.filter(epic_id=card.epic_id, status__in=["queued", "running"]).exists():
        return
    last = Run.objects.filter(epic_id=card.epic_id).order_by("-id").select_related("model_profile").first()
    try:
        agents_services.run_start(epic=card.epic, profile=last.model_profile if last else None)
    except EngineError as refused:
        logger.info("epic %s not continued: %s", card.epic_id, refused.message)


def _seat_with_role(card: Card, *, finalizing: bool = False, named: str = "") -> str:
    team = selectors.team_for(card.epic)
    for seat in team.seats.prefetch_related("roles").order_by("order", "name"):
        for role in seat.roles.all():
            if (finalizing and role.can_finalize) or (named and named in role.name):
                return seat.name
    return ""


def _on_rejected(link: GiteaLink, pull: PullRequestLink, event: payloads.ForgeEvent) -> str:
    card = _card(pull)
    required = link.reviewers()
    reviewer = event.sender.lower()
    text = event.text.strip() or "(no text)"
    if required and reviewer not in required:
        board_services.comment_add(
            card=card,
            actor=ORKET,
            body=f"{event.sender} requested changes on #{pull.number} (not a required reviewer): {text}",
        )
        return f"Changes requested by {event.sender}, who is not a required reviewer: recorded as a comment."
    if pull.state != PullRequestState.OPEN:
        raise Skip(f"Pull request #{pull.number} is {pull.state}; the review changes nothing.")
    pull.review_cycle += 1
    pull.approvals = {}
    pull.save(update_fields=["review_cycle", "approvals", "updated_at"])
    cycle = pull.review_cycle
    board_services.card_review_record(
        card=card,
        actor=ORKET,
        review_cycle=cycle,
        review_reason={"cycle": cycle, "reviewer": event.sender, "text": text, "at": timezone.now().isoformat()},
    )
    board_services.comment_add(
        card=card, actor=ORKET, body=f"Changes requested by {event.sender} (review cycle {cycle}): {text}"
    )
    if cycle >= link.max_cycles:
        return _close_for_requirements(link, pull, card)
    if card.status == machine.CODE_REVIEW:
        board_services.card_transition(
            card=card,
            to_status=machine.IN_PROGRESS,
            actor=ORKET,
            reason=f"Changes requested in Gitea by {event.sender}.",
        )
    elif card.status != machine.IN_PROGRESS:
        return f"Review cycle {cycle} recorded; card #{card.pk} is {card.status}, so no turn was started."
    reviewer_seat = _seat_with_role(card, finalizing=True) or "orket"
    worker = card.seat or "all"
    if cycle == link.escalation_cycle:
        architect = _seat_with_role(card, named="architect")
        if architect:
            pull.escalated_from_seat = card.seat
            pull.save(update_fields=["escalated_from_seat", "updated_at"])
            board_services.card_update(card=card, actor=ORKET, seat=architect)
            worker = architect
            reasons = "\n".join(
                f"- cycle {r['cycle']} ({r['reviewer']}): {r['text']}" for r in _card(pull).review_reasons
            )
            seat_note_add(
                card_id=card.pk,
                from_seat=reviewer_seat,
                to_seat=architect,
                body=f"Escalated after {cycle} rejected reviews: rethink the approach. "
                f"Every rejection so far:\n{reasons}",
            )
            _comment_later(
                link,
                pull.number,
                f"Review cycle {cycle}: escalated to the architect (seat {architect}) to rethink the approach.",
            )
    seat_note_add(
        card_id=card.pk,
        from_seat=reviewer_seat,
        to_seat=worker,
        body=f"Changes requested in Gitea by {event.sender}: {text}",
    )
    started = _start_work(_card(pull), f"changes requested (cycle {cycle})")
    return f"Review cycle {cycle}: card #{card.pk} back to in progress for seat {worker} ({started})."


def _close_for_requirements(link: GiteaLink, pull: PullRequestLink, card: Card) -> str:
    card = _card(pull)
    reasons = card.review_reasons
    listed = "\n".join(f"- cycle {r['cycle']}, {r['reviewer']}: {r['text']}" for r in reasons)
    body = (
        f"Card #{card.pk} ({card.title}) was rejected in review {len(reasons)} times and its pull request "
        f"#{pull.number} was closed. Review the requirements before it is worked again.\n\n"
        f"Acceptance criteria:\n{card.acceptance_criteria or '(none)'}\n\nEvery rejection:\n{listed}"
    )
    review_card = board_services.card_create(
        epic=card.epic,
        actor=ORKET,
        title=f"Requirements review: card #{card.pk} {card.title}"[:TITLE_MAX],
        description=body,
        labels=[REQUIREMENTS_LABEL],
        priority=3.0,
    )
    pull.state = PullRequestState.CLOSED
    pull.closed_by_orket = True
    pull.requirements_card = review_card
    pull.save(update_fields=["state", "closed_by_orket", "requirements_card", "updated_at"])
    if card.status == machine.CODE_REVIEW:
        card = board_services.card_transition(
            card=card, to_status=machine.IN_PROGRESS, actor=ORKET, reason="Review cycles exhausted."
        )
    if card.status == machine.IN_PROGRESS:
        board_services.card_transition(
            card=card,
            to_status=machine.BLOCKED,
            actor=ORKET,
            wait_reason="input",
            reason=f"Rejected {len(reasons)} times; requirements review in card #{review_card.pk}.",
        )
    _record_pull(_card(pull), pull)
    number, pr_body, title = pull.number, body, f"Requirements review: card #{card.pk} {card.title}"[:200]

    def close() -> None:
        client = client_for(link)
        try:
            client.comment_create(
                number,
                f"{COMMENT_MARK}: closing after {len(reasons)} review cycles without approval; "
                f"the requirements go back for review (card #{review_card.pk}).",
            )
            client.pull_close(number)
            client.issue_create(title=title, body=pr_body)
        except GiteaError as error:
            logger.warning("closing pull request #%s failed: %s", number, error.message)
        finally:
            client.close()

    transaction.on_commit(close)
    return (
        f"Review cycle {len(reasons)} reached the maximum: #{number} closed, "
        f"requirements review card #{review_card.pk}."
    )


def _on_review_comment(link: GiteaLink, pull: PullRequestLink, event: payloads.ForgeEvent) -> str:
    card = _card(pull)
    board_services.comment_add(
        card=card,
        actor=ORKET,
        body=f"Review comment by {event.sender} on #{pull.number}: {event.text.strip() or '(empty)'}",
    )
    return f"Review comment by {event.sender} added to card #{card.pk}."


def _on_comment(link: GiteaLink, pull: PullRequestLink, event: payloads.ForgeEvent) -> str:
    if event.text.startswith(COMMENT_MARK):
        raise Skip("Orket's own comment.")
    card = _card(pull)
    board_services.comment_add(card=card, actor=ORKET, body=f"{event.sender} on #{pull.number}: {event.text.strip()}")
    return f"Comment by {event.sender} added to card #{card.pk}."


def _on_merged(link: GiteaLink, pull: PullRequestLink, event: payloads.ForgeEvent) -> str:
    already = pull.state == PullRequestState.MERGED
    pull.state = PullRequestState.MERGED
    pull.save(update_fields=["state", "updated_at"])
    card = _card(pull)
    outcome = f"Pull request #{pull.number} merged by {event.sender}."
    if card.status != machine.DONE:
        if card.status == machine.IN_PROGRESS:
            card = board_services.card_transition(
                card=card, to_status=machine.CODE_REVIEW, actor=ORKET, reason="Its pull request was merged in Gitea."
            )
        if card.status == machine.CODE_REVIEW:
            refused = _finalize(card, f"Pull request #{pull.number} was merged in Gitea by {event.sender}.")
            outcome += f" Card #{card.pk} not finished: {refused}" if refused else f" Card #{card.pk} finished."
        else:
            outcome += f" Card #{card.pk} is {card.status}; the rules do not let it be finished from there."
    _record_pull(_card(pull), pull)
    if not already:
        _merge_workspace_later(card.project_id, card.pk)
        outcome += " " + _deploy(link, pull, card)
    return outcome.strip()


def _on_closed(link: GiteaLink, pull: PullRequestLink, event: payloads.ForgeEvent) -> str:
    if pull.closed_by_orket or pull.state != PullRequestState.OPEN:
        pull.state = PullRequestState.CLOSED if pull.state == PullRequestState.OPEN else pull.state
        pull.save(update_fields=["state", "updated_at"])
        return f"Pull request #{pull.number} closed (by Orket, or already); nothing more to do."
    pull.state = PullRequestState.CLOSED
    pull.save(update_fields=["state", "updated_at"])
    card = _card(pull)
    reason = f"Pull request #{pull.number} was closed without merging by {event.sender}."
    if card.status in (machine.CODE_REVIEW, machine.READY_FOR_TESTING):
        card = board_services.card_transition(card=card, to_status=machine.IN_PROGRESS, actor=ORKET, reason=reason)
    if card.status == machine.IN_PROGRESS:
        board_services.card_transition(
            card=card, to_status=machine.WAITING_FOR_DEVELOPER, actor=ORKET, wait_reason="input", reason=reason
        )
    board_services.comment_add(card=card, actor=ORKET, body=reason + " A person decides what happens next.")
    _record_pull(_card(pull), pull)
    return reason


def _on_reopened(link: GiteaLink, pull: PullRequestLink, event: payloads.ForgeEvent) -> str:
    pull.state, pull.closed_by_orket = PullRequestState.OPEN, False
    pull.save(update_fields=["state", "closed_by_orket", "updated_at"])
    card = _card(pull)
    reason = f"Pull request #{pull.number} was reopened by {event.sender}."
    if card.status == machine.WAITING_FOR_DEVELOPER:
        card = board_services.card_transition(card=card, to_status=machine.IN_PROGRESS, actor=ORKET, reason=reason)
        card = board_services.card_transition(card=card, to_status=machine.CODE_REVIEW, actor=ORKET, reason=reason)
    _record_pull(_card(pull), pull)
    return f"{reason} Card #{card.pk} is {card.status}."


_HANDLERS = {
    payloads.OPENED: _on_opened,
    payloads.EDITED: _on_edited,
    payloads.SYNCHRONIZED: _on_synchronized,
    payloads.APPROVED: _on_approved,
    payloads.REJECTED: _on_rejected,
    payloads.REVIEW_COMMENT: _on_review_comment,
    payloads.COMMENT: _on_comment,
    payloads.MERGED: _on_merged,
    payloads.CLOSED: _on_closed,
    payloads.REOPENED: _on_reopened,
}


# -- side effects after commit ------------------------------------------------------------------------


def _start_work(card: Card, why: str) -> str:
    """Start a run of the card (with the model profile of its last run), or advance the active run."""
    last = Run.objects.filter(epic_id=card.epic_id).order_by("-id").select_related("model_profile").first()
    try:
        run = agents_services.run_start(epic=card.epic, card=card, profile=last.model_profile if last else None)
    except EngineError as refused:
        active = Run.objects.filter(epic_id=card.epic_id, status__in=["queued", "running"]).first()
        if refused.code == "run_active" and active is not None:
            dispatch.run_advance_after_commit(run_id=active.pk)
            return f"run {active.pk} is active and takes it up"
        return f"no turn started: {refused.message}"
    return f"run {run.pk} started for {why}"


def _comment_later(link: GiteaLink, number: int, text: str) -> None:
    dispatch.gitea_comment_post_after_commit(link_id=link.pk, number=number, text=text)


def pull_request_comment(*, link_id: int, number: int, text: str) -> None:
    link = GiteaLink.objects.get(pk=link_id)
    client = client_for(link)
    try:
        client.comment_create(number, f"{COMMENT_MARK}: {text}")
    finally:
        client.close()


def _workspace(project_id: int) -> ProjectWorkspace:
    workspace = ProjectWorkspace(Path(settings.DATA_DIR) / "workspaces" / f"project-{project_id}")
    workspace.ensure()
    return workspace


def _merge_workspace_later(project_id: int, card_id: int) -> None:
    def merge() -> None:
        try:
            _workspace(project_id).merge_card(card_id)
        except Exception as error:  # the forge holds the merge; the local copy is a convenience
            logger.warning("merging card %s in the local workspace failed: %s", card_id, error)

    transaction.on_commit(merge)


def _after_commit_fetch(link: GiteaLink, pull_pk: int, sha: str) -> None:
    """Bring a person's commits into the card's worktree, so the agents review what was pushed."""

    def fetch() -> None:
        pull = PullRequestLink.objects.get(pk=pull_pk)
        workspace = _workspace(pull.project_id)
        try:
            worktree = workspace.card_worktree(pull.card_id)
            url = git_remote.remote_url(link.base_url, link.owner, link.repo)
            pinned = outbound_policy.git_config(url)
            with workspace.lock():
                fetched = git_remote.fetch(
                    workspace.repo, url, link.token(), remote_branch=pull.head_branch, config=pinned
                )
                if not git_remote.fast_forward(worktree, fetched):
                    logger.warning("card %s: %s is not a fast-forward of the worktree", pull.card_id, sha[:10])
        except (git_remote.PushFailed, OrketError, OSError, ValueError) as error:
            logger.warning("fetching the commits of pull request #%s failed: %s", pull.number, error)

    transaction.on_commit(fetch)


def _deploy(link: GiteaLink, pull: PullRequestLink, card: Card) -> str:
    """With auto-deploy, start a sandbox of the merged card; its URL is commented on the pull request
    once it runs (the task gitea_sandbox_announce watches it)."""
    if not link.auto_deploy:
        return ""
    try:
        from sandboxes import services as sandbox_services
    except ImportError:
        _comment_later(link, pull.number, "Auto-deploy is on, but this Orket has no sandbox service.")
        return "Auto-deploy skipped: no sandbox service."
    try:
        sandbox = sandbox_services.sandbox_create(
            project=card.project, card=card, pull_request_number=pull.number, user=None
        )
    except OrketError as error:
        _comment_later(link, pull.number, f"Auto-deploy: no sandbox was started: {error.message}")
        return f"Auto-deploy refused: {error.message}"
    dispatch.gitea_sandbox_announce_after_commit(link_id=link.pk, number=pull.number, sandbox_id=sandbox.pk)
    return f"Sandbox {sandbox.pk} is starting."


def sandbox_announce(*, link_id: int, number: int, sandbox_id: int) -> bool:
    """Comment the sandbox's URL on the pull request once it runs (or why it does not); False while it
    is still starting."""
    from sandboxes.models import Sandbox, SandboxStatus

    sandbox = Sandbox.objects.filter(pk=sandbox_id).first()
    if sandbox is None:
        return True
    if sandbox.status == SandboxStatus.CREATING:
        return False
    if sandbox.status == SandboxStatus.RUNNING:
        urls = sandbox.urls or {}
        url = str(urls.get("app") or next(iter(urls.values()), ""))
        PullRequestLink.objects.filter(project_id=sandbox.project_id, number=number).update(sandbox_url=url[:500])
        listed = ", ".join(f"{name}: {address}" for name, address in sorted(urls.items()))
        text = f"Sandbox running: {url}" + (f" ({listed})" if len(urls) > 1 else "")
    else:
        text = f"The sandbox is {sandbox.status}: {sandbox.last_error[-500:] or 'no detail'}"
    pull_request_comment(link_id=link_id, number=number, text=text)
    return True


# ---------------------------------------------------------------------------------------------
# From card to pull request
# ---------------------------------------------------------------------------------------------


def _pull_body(card: Card) -> str:
    turns = Turn.objects.filter(card=card).order_by("id")
    lines = [
        f"- run {turn.run_id}, turn {turn.number}: {turn.seat} as {turn.role} ({turn.status})"
        f"{', commit ' + turn.commit_sha[:10] if turn.commit_sha else ''}: {turn.outcome[:200]}"
        for turn in turns
    ]
    return (
        f"Orket card #{card.pk}: {card.title}\n\n## Summary\n\n{card.description or '(no description)'}\n\n"
        f"## Acceptance criteria\n\n{card.acceptance_criteria or '(none given)'}\n\n"
        f"## Turns that produced it\n\n" + ("\n".join(lines) or "(none)") + "\n"
    )


def card_pull_request_try(*, card_id: int) -> PullRequestLink | None:
    """card_pull_request_open, saying on the card why it failed (reconciliation tries again)."""
    try:
        return card_pull_request_open(card_id=card_id)
    except (GiteaError, git_remote.PushFailed, OrketError) as error:
        card = Card.objects.get(pk=card_id)
        message = getattr(error, "message", None) or str(error)
        board_services.comment_add(card=card, actor=ORKET, body=f"The pull request could not be opened: {message}")
        logger.warning("card %s: pull request not opened: %s", card_id, message)
        return None


def card_pull_request_open(*, card_id: int) -> PullRequestLink | None:
    """Push card/<id> to the linked repository and open its pull request (or update the open one).
    Runs in a task: network first, then one short transaction."""
    card = Card.objects.select_related("epic", "project").get(pk=card_id)
    link = GiteaLink.objects.filter(project_id=card.project_id, enabled=True).first()
    if link is None or card.status != machine.CODE_REVIEW:
        return None
    workspace = _workspace(card.project_id)
    branch = workspace.card_branch(card.pk)
    url = git_remote.remote_url(link.base_url, link.owner, link.repo)
    pinned = outbound_policy.git_config(url)  # before the token is read: a refused host never gets it
    token = link.token()
    # A project whose source is this repository targets the branch its card started from, so the
    # pull request shares that branch's history.
    from_source = source_services.pull_request_base(card.project_id, card.epic_id)
    base_branch = from_source or link.base_branch
    with workspace.lock():
        try:  # the base branch, when the repository has none yet (a source repository has it already)
            if not from_source:
                git_remote.push(
                    workspace.repo,
                    url,
                    token,
                    local_ref=f"refs/heads/{workspace.base_branch()}",
                    remote_branch=base_branch,
                    config=pinned,
                )
        except git_remote.PushFailed as error:
            logger.info("base branch not pushed (it exists with other history, or is protected): %s", error)
        sha = git_remote.local_sha(workspace.repo, f"refs/heads/{branch}")
        # Recorded before pushing: Gitea's `synchronized` webhook for this push may arrive before push returns.
        pull = PullRequestLink.objects.filter(card=card, state=PullRequestState.OPEN).first()
        if pull is not None:
            PullRequestLink.objects.filter(pk=pull.pk).update(last_pushed_sha=sha)
        git_remote.push(workspace.repo, url, token, local_ref=sha, remote_branch=branch, config=pinned)
    if pull is not None:
        PullRequestLink.objects.filter(pk=pull.pk).update(head_sha=sha)
        pull.refresh_from_db()
        return pull
    client = client_for(link)
    try:
        existing = [p for p in client.pulls_open() if (p.get("head") or {}).get("ref") == branch]
        data = (
            existing[0]
            if existing
            else client.pull_create(
                head=branch, base=base_branch, title=f"Card #{card.pk}: {card.title}"[:250], body=_pull_body(card)
            )
        )
    finally:
        client.close()
    with transaction.atomic():
        pull, _ = PullRequestLink.objects.update_or_create(
            project_id=card.project_id,
            number=int(data["number"]),
            defaults={
                "card": card,
                "url": str(data.get("html_url") or ""),
                "state": PullRequestState.OPEN,
                "head_branch": branch,
                "head_sha": sha,
                "last_pushed_sha": sha,
            },
        )
        _record_pull(card, pull)
        board_services.comment_add(card=card, actor=ORKET, body=f"Pull request #{pull.number} opened: {pull.url}")
    return pull


# ---------------------------------------------------------------------------------------------
# Reconciliation
# ---------------------------------------------------------------------------------------------


def gitea_reconcile(*, link: GiteaLink) -> list[str]:
    """Read the open pull requests Orket knows of back from Gitea and apply what was missed (merges,
    closes, reviews, new commits) through event_apply, the webhooks' own path. Cards waiting in
    code_review without a pull request (a failed push) get theirs."""
    done: list[str] = []
    client = client_for(link)
    try:
        open_numbers = {int(p["number"]): p for p in client.pulls_open()}
        for pull in PullRequestLink.objects.filter(project_id=link.project_id, state=PullRequestState.OPEN):
            data = open_numbers.get(pull.number) or client.pull_get(pull.number)
            events: list[payloads.ForgeEvent] = []
            state = payloads.from_api_pull(link.full_name, data)
            if state.kind in (payloads.MERGED, payloads.CLOSED):
                events.append(state)
            else:
                if state.head_sha and state.head_sha not in (pull.head_sha, pull.last_pushed_sha):
                    events.append(
                        payloads.ForgeEvent(
                            **{**state.__dict__, "kind": payloads.SYNCHRONIZED, "action": "synchronized"}
                        )
                    )
                for review in client.reviews_list(pull.number):
                    event = payloads.from_api_review(link.full_name, pull.number, review)
                    if event.kind in (payloads.APPROVED, payloads.REJECTED) and not review.get("stale"):
                        events.append(event)
            for event in events:
                try:
                    done.append(event_apply(link=link, event=event, source="reconcile"))
                except (Skip, _Duplicate):
                    continue
    finally:
        client.close()
    done.extend(_merges_left_undone(link))
    waiting = Card.objects.filter(project_id=link.project_id, status=machine.CODE_REVIEW).exclude(
        pull_requests__state=PullRequestState.OPEN
    )
    for card_id in waiting.values_list("pk", flat=True):
        if not PullRequestLink.objects.filter(card_id=card_id).exclude(state=PullRequestState.OPEN).exists():
            try:
                card_pull_request_open(card_id=card_id)
                done.append(f"Opened the missing pull request of card #{card_id}.")
            except (GiteaError, git_remote.PushFailed, OrketError) as error:
                done.append(f"Card #{card_id}: {getattr(error, 'message', error)}")
    GiteaLink.objects.filter(pk=link.pk).update(last_reconciled_at=timezone.now())
    return done


def gitea_reconcile_all() -> dict[int, list[str]]:
    results: dict[int, list[str]] = {}
    for link in GiteaLink.objects.filter(enabled=True):
        try:
            results[link.project_id] = gitea_reconcile(link=link)
        except (GiteaError, OrketError) as error:
            results[link.project_id] = [f"failed: {getattr(error, 'message', error)}"]
            logger.warning("reconciling project %s failed: %s", link.project_id, error)
    return results


def role_of(name: str) -> Role | None:
    return Role.objects.filter(name=name).first()
