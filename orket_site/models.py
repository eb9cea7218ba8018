"""API tokens: one per client, stored hashed (django-rest-knox), named, expiring and revocable."""

from __future__ import annotations

from django.db import models
from knox.models import AbstractAuthToken
from knox.settings import CONSTANTS


class ApiToken(AbstractAuthToken):
    """knox's token (SHA-512 digest, the key's first characters for lookup, expiry) with a short id
    to name it in URLs, the client's name for it and when it was last used. The key itself is shown
    once, when it is made."""

    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=CONSTANTS.DIGEST_LENGTH, unique=True)
    name = models.CharField(max_length=100, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.token_key}… ({self.name or 'unnamed'}) of {self.user}"
