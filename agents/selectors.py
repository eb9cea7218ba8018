"""Reads of the agents app that more than one caller needs."""

from __future__ import annotations

from django.db.models import Case, Count, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from agents.models import Run, Turn, TurnStatus
from boards import machine
from boards.models import Card

ACTIVE_TURN_STATUSES = (TurnStatus.QUEUED, TurnStatus.RUNNING)


def _epic_card_count(*, done_only: bool) -> Subquery:
    cards = Card.objects.filter(epic_id=OuterRef("epic_id"))
    if done_only:
        cards = cards.filter(status=machine.DONE)
    counted = cards.order_by().values("epic_id").annotate(n=Count("pk")).values("n")
    return Subquery(counted, output_field=IntegerField())


def runs_summarised(queryset: QuerySet[Run]) -> QuerySet[Run]:
    """Runs with what a list shows of each (cards done and in all, active turns) in a constant number
    of queries, whatever the number of runs: counts are annotated, active turns prefetched."""
    single_card_done = Case(When(card__status=machine.DONE, then=Value(1)), default=Value(0))
    return (
        queryset.select_related("model_profile", "team", "epic")
        .annotate(
            summary_cards_total=Case(
                When(card__isnull=False, then=Value(1)),
                default=Coalesce(_epic_card_count(done_only=False), Value(0)),
                output_field=IntegerField(),
            ),
            summary_cards_done=Case(
                When(card__isnull=False, then=single_card_done),
                default=Coalesce(_epic_card_count(done_only=True), Value(0)),
                output_field=IntegerField(),
            ),
        )
        .prefetch_related(
            Prefetch(
                "turns",
                queryset=Turn.objects.filter(Q(status__in=ACTIVE_TURN_STATUSES)).order_by("id"),
                to_attr="summary_active_turns",
            )
        )
    )


def run_summarised(run_id: int) -> Run:
    return runs_summarised(Run.objects.filter(pk=run_id)).get()
