"""WebSocket routes, gathered from the apps.

Ids in socket paths are row ids: a number no row can have (more than 2**63 - 1, which SQLite cannot
even compare) matches no route, and a path that matches no route is refused like a missing object
instead of raising inside the router."""

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import URLPattern, path, re_path, register_converter

from agents.consumers import CLOSE_NOT_AUTHENTICATED, CLOSE_NOT_FOUND, ProjectBoardConsumer, RunStreamConsumer
from sandboxes.consumers import LogStreamConsumer

MAX_ROW_ID = 2**63 - 1


class RowIdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ROW_ID:
            raise ValueError("no row has this id")  # Django then tries the next route
        return number

    def to_url(self, value: int) -> str:
        return str(value)


class NoRouteConsumer(AsyncWebsocketConsumer):
    """Closes every socket whose path matches no route, as the consumers close one for a missing object."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        signed_in = user is not None and user.is_authenticated
        await self.close(code=CLOSE_NOT_FOUND if signed_in else CLOSE_NOT_AUTHENTICATED)


register_converter(RowIdConverter, "row_id")

websocket_urlpatterns: list[URLPattern] = [
    path("ws/projects/<row_id:project_id>/", ProjectBoardConsumer.as_asgi()),
    path("ws/runs/<row_id:run_id>/", RunStreamConsumer.as_asgi()),
    path("ws/logs/<row_id:stream_id>/", LogStreamConsumer.as_asgi()),
    re_path(r"", NoRouteConsumer.as_asgi()),
]
