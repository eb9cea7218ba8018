"""Turn leases: claiming a turn, keeping it, and recovering turns and runs whose worker went away.

A turn is claimed with a compare-and-set on its status plus a lease (owner, expiry, heartbeat); a
duplicated or redelivered task finds the turn taken and does nothing. While a turn runs, a
`LeaseKeeper` thread renews its lease. A periodic task returns turns whose lease went stale to the
queue (or fails them after too many attempts) and dispatches again the work whose task was lost.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Any

from django import db
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agents import dispatch
from agents.models import TURN_ACTIVE_STATUSES, Run, RunStatus, Turn, TurnStatus
from agents.run_events import event_append

logger = logging.getLogger(__name__)

LEASE_SECONDS = float(os.environ.get("ORKET_TURN_LEASE_SECONDS", "60"))
HEARTBEAT_SECONDS = max(1.0, LEASE_SECONDS / 4)
MAX_TURN_ATTEMPTS = 3


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def turn_claim(*, turn_id: int, owner: str) -> Turn | None:
    """Take a queued turn (compare-and-set); None when someone else has it or it is no longer queued."""
    now = timezone.now()
    claimed = Turn.objects.filter(pk=turn_id, status=TurnStatus.QUEUED).update(
        status=TurnStatus.RUNNING,
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=LEASE_SECONDS),
        heartbeat_at=now,
        started_at=now,
    )
    if not claimed:
        return None
    Turn.objects.filter(pk=turn_id).update(attempts=F("attempts") + 1)
    return Turn.objects.select_related("run", "run__model_profile", "run__team", "card").get(pk=turn_id)


def turn_heartbeat(*, turn_id: int, owner: str) -> bool:
    """Extend the lease; False when the lease was lost (the turn was reaped and maybe re-run)."""
    now = timezone.now()
    return bool(
        Turn.objects.filter(pk=turn_id, status=TurnStatus.RUNNING, lease_owner=owner).update(
            lease_expires_at=now + timedelta(seconds=LEASE_SECONDS), heartbeat_at=now
        )
    )


def turns_reap_stale() -> int:
    """Return running turns whose lease expired to the queue (or fail them after too many attempts)."""
    now = timezone.now()
    reaped = 0
    for turn in Turn.objects.filter(status=TurnStatus.RUNNING, lease_expires_at__lt=now).select_related("run"):
        with transaction.atomic():
            if turn.attempts >= MAX_TURN_ATTEMPTS:
                changed = Turn.objects.filter(
                    pk=turn.pk, status=TurnStatus.RUNNING, lease_owner=turn.lease_owner
                ).update(
                    status=TurnStatus.FAILED,
                    finished_at=now,
                    outcome=f"The worker holding this turn stopped answering {turn.attempts} times.",
                )
                if changed:
                    event_append(
                        turn.run_id,
                        "turn.failed",
                        turn_id=turn.pk,
                        card_id=turn.card_id,
                        reason="lease expired too many times",
                    )
                    dispatch.run_advance_after_commit(run_id=turn.run_id)
            else:
                changed = Turn.objects.filter(
                    pk=turn.pk, status=TurnStatus.RUNNING, lease_owner=turn.lease_owner
                ).update(status=TurnStatus.QUEUED, lease_owner="", lease_expires_at=None, queued_at=now)
                if changed:
                    event_append(
                        turn.run_id,
                        "turn.requeued",
                        turn_id=turn.pk,
                        card_id=turn.card_id,
                        reason=f"the lease of {turn.lease_owner} expired",
                    )
                    dispatch.turn_execute_after_commit(turn_id=turn.pk)
            reaped += changed
    _redispatch_lost_work(now)
    return reaped


def _redispatch_lost_work(now: Any) -> None:
    """Tasks can be lost with the worker that had reserved them. The database says what is owed:
    queued turns nobody claimed within a lease are dispatched again (claiming is idempotent), and
    active runs with no active turn are advanced again."""
    stale = now - timedelta(seconds=LEASE_SECONDS)
    with transaction.atomic():
        for turn_id in Turn.objects.filter(status=TurnStatus.QUEUED, queued_at__lt=stale).values_list("pk", flat=True):
            Turn.objects.filter(pk=turn_id, status=TurnStatus.QUEUED).update(queued_at=now)
            dispatch.turn_execute_after_commit(turn_id=turn_id)
        idle_runs = Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exclude(
            turns__status__in=TURN_ACTIVE_STATUSES
        )
        for run_id in idle_runs.values_list("pk", flat=True).distinct():
            dispatch.run_advance_after_commit(run_id=run_id)


def turns_requeue_orphans() -> int:
    """At start-up of the embedded default, whose in-memory queue was lost: dispatch queued turns
    again and advance active runs. The database, not the broker, is the record."""
    count = 0
    with transaction.atomic():
        for turn_id in Turn.objects.filter(status=TurnStatus.QUEUED).values_list("pk", flat=True):
            dispatch.turn_execute_after_commit(turn_id=turn_id)
            count += 1
        for run_id in Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).values_list("pk", flat=True):
            dispatch.run_advance_after_commit(run_id=run_id)
    return count


class LeaseLost(Exception):
    pass


class LeaseKeeper:
    """Extends a turn's lease from a background thread for as long as the turn runs, so a model
    that takes minutes before its first token (a long prompt on a local model) never looks dead.
    When the process dies the heartbeats stop with it, and the lease expires as it should."""

    def __init__(self, turn_id: int, owner: str) -> None:
        self.turn_id, self.owner = turn_id, owner
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"orket-lease-{turn_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(HEARTBEAT_SECONDS + 5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(HEARTBEAT_SECONDS):
                try:
                    held = turn_heartbeat(turn_id=self.turn_id, owner=self.owner)
                except (db.OperationalError, db.InterfaceError):
                    # A database blip: try again at the next beat. If the lease ran out meanwhile,
                    # that beat finds it taken and the turn stops.
                    logger.warning("turn %s: heartbeat could not reach the database", self.turn_id)
                    db.connection.close()
                    continue
                if not held:
                    self.lost.set()
                    return
        finally:
            db.connection.close()
