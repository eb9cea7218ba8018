"""WebSocket routes, gathered from the apps."""

from django.urls import URLPattern, path

from agents.consumers import ProjectBoardConsumer, RunStreamConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/projects/<int:project_id>/", ProjectBoardConsumer.as_asgi()),
    path("ws/runs/<int:run_id>/", RunStreamConsumer.as_asgi()),
]
