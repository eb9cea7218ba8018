"""Reactions of the sandboxes app to other apps' signals (connected in SandboxesConfig.ready)."""

from __future__ import annotations

import logging
import os
from typing import Any

from boards.models import Card

log = logging.getLogger(__name__)


def verify_on_review(sender: Any, *, card_id: int, project_id: int, **kwargs: Any) -> None:
    """A card entering code_review gets a verification run when it has a fixture (ORKET_VERIFY_ON_REVIEW=0
    turns this off). Sent after commit: a problem here is logged and never undoes or breaks the move."""
    if os.environ.get("ORKET_VERIFY_ON_REVIEW", "1").strip().lower() in {"0", "false", "no", "off"}:
        return
    from sandboxes import verification

    try:
        card = Card.objects.filter(pk=card_id).first()
        if card is None:
            return
        _, fixture, _ = verification.card_fixture(card)
        if fixture is None:
            return
        verification.verification_start(card=card, requested_by="orket: entered code review")
    except Exception:  # after commit: the card has moved; a verification that cannot start is only logged
        log.exception("could not start the verification of card %s on entering code review", card_id)
