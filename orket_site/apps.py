from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.core.signals import request_finished


class OrketSiteConfig(AppConfig):
    name = "orket_site"
    verbose_name = "Orket site"

    def ready(self) -> None:
        from django.conf import settings
        from django.contrib.auth.signals import user_login_failed
        from django.db.models.signals import post_save

        from orket_site.api import schema  # noqa: F401 - registers the OpenAPI auth extensions
        from orket_site.api_tokens import revoke_api_tokens_on_password_change
        from orket_site.db_connections import close_request_thread_connections
        from orket_site.login_limits import count_failed_sign_in
        from orket_site.socket_access import connect_receivers

        connect_receivers()

        request_finished.connect(close_request_thread_connections, dispatch_uid="orket-close-request-connections")
        user_login_failed.connect(count_failed_sign_in, dispatch_uid="orket-count-failed-sign-in")
        post_save.connect(
            revoke_api_tokens_on_password_change,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="orket-revoke-api-tokens-on-password-change",
        )


class OrketAdminConfig(admin_apps.AdminConfig):
    """Django's admin, on a site whose password change counts against the sign-in limits."""

    default = False  # named in INSTALLED_APPS; OrketSiteConfig stays this module's default
    default_site = "orket_site.admin_site.OrketAdminSite"
