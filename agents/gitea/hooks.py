"""What the agent engine asks of the Gitea integration (agents/engine.py and agents/turns.py call these three).

For a project linked to Gitea, people review in Gitea: a card whose coding work reached code_review
gets a pull request and then waits for its review there instead of getting an agent review turn, and
only an approval in Gitea (applied by the integrity guard's seat) finishes it. The agents' guard
still reviews when a person pushes commits to the pull request, and may send the card back, but does
not finish it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agents import dispatch
from agents.gitea.models import GiteaLink, PullRequestLink, PullRequestState
from boards import machine
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card

# The actor of everything the Gitea integration does to cards.
ORKET = Actor.orket("gitea")


def _linked(project_id: int) -> bool:
    return GiteaLink.objects.filter(project_id=project_id, enabled=True).exists()


def cards_waiting_for_review(cards: Iterable[Card]) -> set[int]:
    """Ids of cards in code_review on a linked project that wait for people in Gitea (no agent turn)."""
    in_review = [card for card in cards if card.status == machine.CODE_REVIEW]
    if not in_review or not _linked(in_review[0].project_id):
        return set()
    requested = set(
        PullRequestLink.objects.filter(
            card__in=in_review, state=PullRequestState.OPEN, agent_review_requested=True
        ).values_list("card_id", flat=True)
    )
    return {card.pk for card in in_review} - requested


def agents_may_finalize(card: Card) -> bool:
    """On a linked project only an approval in Gitea finishes a card."""
    return not _linked(card.project_id)


def turn_finished(*, card_id: int, seat: str, can_finalize: bool, outcome: str = "", **_: Any) -> None:
    """After a turn: open or update the pull request when the work reached code_review (a finalizing
    seat's turn only opens a missing one); end an agent review that a person's commits asked for; give
    an escalated card back to its seat."""
    card = Card.objects.get(pk=card_id)
    if not _linked(card.project_id):
        return
    pull = PullRequestLink.objects.filter(card_id=card_id, state=PullRequestState.OPEN).first()
    if can_finalize:
        if pull is not None and pull.agent_review_requested:
            PullRequestLink.objects.filter(pk=pull.pk).update(agent_review_requested=False)
            link_id, number = GiteaLink.objects.get(project_id=card.project_id).pk, pull.number
            text = f"The agents' review of the new commits ({seat}): {outcome or 'no findings'}; card is {card.status}."
            dispatch.gitea_comment_post_after_commit(link_id=link_id, number=number, text=text)
        if pull is not None:
            return
    if card.status != machine.CODE_REVIEW:
        return
    if pull is not None and pull.escalated_from_seat and card.seat != pull.escalated_from_seat:
        board_services.card_update(card=card, actor=ORKET, seat=pull.escalated_from_seat)
        PullRequestLink.objects.filter(pk=pull.pk).update(escalated_from_seat="")
    dispatch.gitea_pull_request_open_after_commit(card_id=card_id)
