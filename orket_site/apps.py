from django.apps import AppConfig


class OrketSiteConfig(AppConfig):
    name = "orket_site"
    verbose_name = "Orket site"

    def ready(self) -> None:
        from orket_site.api import schema  # noqa: F401 - registers the OpenAPI auth extensions
