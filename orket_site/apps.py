from django.apps import AppConfig
from django.core.signals import request_finished


class OrketSiteConfig(AppConfig):
    name = "orket_site"
    verbose_name = "Orket site"

    def ready(self) -> None:
        from orket_site.api import schema  # noqa: F401 - registers the OpenAPI auth extensions
        from orket_site.db_connections import close_request_thread_connections
        from orket_site.socket_access import connect_receivers

        connect_receivers()

        request_finished.connect(close_request_thread_connections, dispatch_uid="orket-close-request-connections")
