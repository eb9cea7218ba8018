"""WebSocket consumers. Every consumer checks the session user and project membership on connect;
the Origin header is checked for all of them by AllowedHostsOriginValidator in orket_site.asgi."""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from boards.access import project_role_of
from boards.events import project_group

logger = logging.getLogger(__name__)

# Close codes in the private range, so clients can tell "log in again" from "no such project".
CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class ProjectBoardConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/projects/{id}/`: small card and run change events for one board, sent after commit.

    Clients re-fetch what changed; the stream carries no state of its own.
    """

    group_name: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        project_id = int(self.scope["url_route"]["kwargs"]["project_id"])
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_AUTHENTICATED)
            return
        role = await database_sync_to_async(project_role_of)(user, project_id)
        if role is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group_name = project_group(project_id)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "project": project_id, "role": role})

    async def disconnect(self, code: int) -> None:
        if self.group_name is not None:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The board stream is one-way; anything a client sends is ignored.
        return

    async def card_event(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": event["kind"], "card": event["card"]})

    async def run_event(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": event["kind"], "run": event["run"]})
