"""OpenAPI descriptions of Orket's authentication classes (loaded from OrketSiteConfig.ready)."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme


class OrketSessionScheme(SessionScheme):
    target_class = "orket_site.api.auth.SessionAuthentication"


class OrketTokenScheme(KnoxTokenScheme):
    target_class = "orket_site.api.auth.TokenAuthentication"
    name = "tokenAuth"
