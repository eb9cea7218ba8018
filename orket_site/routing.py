"""WebSocket routes, gathered from the apps."""

from django.urls import URLPattern, path

from agents.consumers import ProjectBoardConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/projects/<int:project_id>/", ProjectBoardConsumer.as_asgi()),
]
