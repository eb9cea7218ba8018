"""OpenAPI descriptions of Orket's authentication classes (loaded from OrketSiteConfig.ready)."""

from drf_spectacular.authentication import SessionScheme, TokenScheme


class OrketSessionScheme(SessionScheme):
    target_class = "orket_site.api.auth.SessionAuthentication"


class OrketTokenScheme(TokenScheme):
    target_class = "orket_site.api.auth.TokenAuthentication"
