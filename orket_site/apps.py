from django.apps import AppConfig


class OrketSiteConfig(AppConfig):
    name = "orket_site"
    verbose_name = "Orket site"
