"""ASGI entry point: HTTP through Django, WebSockets through Channels with session auth and an exact
Origin check (orket_site.origin_middleware). Later issues add their WebSocket routes to
`websocket_urlpatterns`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orket_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from orket_site.concurrency import BoundedHttpConcurrency  # noqa: E402
from orket_site.heap import settle_heap  # noqa: E402
from orket_site.lean_http import LeanRoute  # noqa: E402
from orket_site.origin_middleware import ExactOriginValidator  # noqa: E402
from orket_site.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BoundedHttpConcurrency(
            # Gitea's webhook deliveries skip the session machinery they never use.
            LeanRoute(
                django_asgi_app,
                path=r"/hooks/gitea/[^/]+/",
                methods=frozenset({"POST"}),
                threads=settings.ORKET_WEBHOOK_CONCURRENCY,
            ),
            settings.ORKET_WEB_CONCURRENCY,
            dedicated={"/hooks/": settings.ORKET_WEBHOOK_CONCURRENCY},
        ),
        "websocket": ExactOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
settle_heap()
