"""API tokens: made by presenting a password, listed and revoked by their owner, all revoked when the
owner's password changes. The key is returned once; only its SHA-512 digest is stored (knox)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from orket_site.errors import OrketError
from orket_site.models import ApiToken

logger = logging.getLogger("orket.auth")

LAST_USED_PRECISION = timedelta(minutes=1)  # fewer writes: "last used" moves at most once a minute


class ApiTokenNotFound(OrketError):
    status = 404
    code = "not_found"


def api_tokens_of(user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's tokens that still work, newest first."""
    return ApiToken.objects.filter(user=user, expiry__gt=timezone.now())


@transaction.atomic
def api_token_create(*, user: AbstractBaseUser, name: str = "") -> tuple[ApiToken, str]:
    """A new token for one client; the user's expired tokens are cleared on the way."""
    ApiToken.objects.filter(user=user, expiry__lte=timezone.now()).delete()
    token, key = ApiToken.objects.create(user=user, name=name)
    logger.info("API token %s made for user %s", token.pk, user.pk)
    return token, key


def api_token_revoke(*, user: AbstractBaseUser, token_id: int) -> None:
    """Revoke one of the user's own tokens; another user's token is not found."""
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    if not deleted:
        raise ApiTokenNotFound("Not found.")
    logger.info("API token %s of user %s revoked", token_id, user.pk)


def api_tokens_revoke_all(*, user: AbstractBaseUser) -> int:
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    if deleted:
        logger.info("all %s API tokens of user %s revoked", deleted, user.pk)
    return deleted


def api_token_mark_used(*, token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used is None or now - token.last_used >= LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
        token.last_used = now


def revoke_api_tokens_on_password_change(
    sender: Any, instance: AbstractBaseUser, created: bool = False, **_: Any
) -> None:
    """Receiver of the user model's post_save. `_password` holds the new raw password from
    set_password() until the save completes; Django clears it itself for mere hash upgrades, which
    are not password changes (the same test that makes it call the validators' password_changed)."""
    if not created and getattr(instance, "_password", None) is not None:
        api_tokens_revoke_all(user=instance)
