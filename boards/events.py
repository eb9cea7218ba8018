"""Small "card changed" events for the live board, sent after commit through the channel layer.

The channel layer is a fast path, never the record: a failure to publish is logged and swallowed,
and a board that misses an event re-fetches from the API.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def project_group(project_id: int) -> str:
    return f"project_{project_id}"


def publish_card_event(project_id: int, kind: str, card_id: int) -> None:
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        async_to_sync(layer.group_send)(
            project_group(project_id), {"type": "card.event", "kind": kind, "card": card_id}
        )
    except Exception:
        logger.warning("Could not publish %s for card %s in project %s", kind, card_id, project_id, exc_info=True)
