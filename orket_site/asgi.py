"""ASGI entry point: HTTP through Django, WebSockets through Channels with session auth and Origin
checks. Later issues add their WebSocket routes to `websocket_urlpatterns`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orket_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from orket_site.concurrency import BoundedHttpConcurrency  # noqa: E402
from orket_site.heap import settle_heap  # noqa: E402
from orket_site.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BoundedHttpConcurrency(django_asgi_app, settings.ORKET_WEB_CONCURRENCY),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
settle_heap()
