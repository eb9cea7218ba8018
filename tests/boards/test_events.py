"""Change events go out through the real channel layer, only after commit, and never break a write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import override_settings

from boards import services
from boards.events import project_group
from boards.models import Card
from boards.services import TransitionRefused
from tests.boards.conftest import CODER


def _listen(project_id: int) -> tuple[Any, str]:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(project_group(project_id), channel)
    return layer, channel


def test_transition_event_after_commit(make_card: Callable[..., Card], django_capture_on_commit_callbacks: Any) -> None:
    card = make_card()
    layer, channel = _listen(card.project_id)
    with django_capture_on_commit_callbacks(execute=False) as refused_callbacks, pytest.raises(TransitionRefused):
        services.card_transition(card=card, to_status="done", actor=CODER)
    assert refused_callbacks == []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.card_transition(card=card, to_status="in_progress", actor=CODER)
    assert len(callbacks) == 2  # the card, and the epic rolling up
    first = async_to_sync(layer.receive)(channel)
    second = async_to_sync(layer.receive)(channel)
    assert first == {"type": "card.event", "kind": "card.changed", "card": card.pk}
    assert second == {"type": "card.event", "kind": "epic.changed", "card": card.epic_id}


@override_settings(
    CHANNEL_LAYERS={
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
)
def test_unreachable_channel_layer_is_logged_not_raised(
    make_card: Callable[..., Card], django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    card = make_card()
    with django_capture_on_commit_callbacks(execute=True):
        services.card_transition(card=card, to_status="in_progress", actor=CODER)
    assert Card.objects.get(pk=card.pk).status == "in_progress"
    assert "Could not publish card.changed" in caplog.text
