"""Telling a user's open WebSockets that what allowed them may have changed.

Every socket joins its user's channel-layer group on connect. After a logout, a change of the
user's password, active flag or superuser flag, or (from boards) a change of their memberships, an
"access.changed" message goes to that group after commit; each socket then re-checks its session and
its project from the database and closes when they no longer allow it. The channel layer is only the
fast path: the sockets also re-check on a timer, which catches what a lost message or a write that
sends no signal (a queryset update, an expired session) would miss.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

logger = logging.getLogger(__name__)

ACCESS_CHANGED = "access.changed"
# The fields of a user whose change may withdraw a socket's access.
ACCESS_FIELDS = frozenset({"password", "is_active", "is_superuser"})


def user_group(user_id: int) -> str:
    return f"user_{user_id}"


def session_fingerprint(session_key: str) -> str:
    """What a message names a session by, so the key itself never travels through the layer."""
    return hashlib.sha256(session_key.encode()).hexdigest()


def publish_access_changed(user_id: int, *, ended_session: str | None = None) -> None:
    """Tell the user's sockets to re-check now; `ended_session` (a fingerprint) closes that session's
    sockets without a database read. A failure is logged: the timed re-check still comes."""
    message: dict[str, Any] = {"type": ACCESS_CHANGED}
    if ended_session is not None:
        message["ended_session"] = ended_session
    try:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(user_group(user_id), message)
    except Exception:
        logger.warning("Could not tell the sockets of user %s that their access changed", user_id, exc_info=True)


def access_changed_on_commit(user_id: int) -> None:
    transaction.on_commit(lambda: publish_access_changed(user_id))


def signed_in_user(session_key: str | None, user_id: int, auth_hash: str) -> AbstractBaseUser | None:
    """The user the stored session still signs in, when it is the same active user with the same
    password as when the socket opened; None after a logout, an expiry or a password change.
    Reads only: unlike `auth.get_user` it never flushes or cycles the session it looks at."""
    if not session_key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    backend_path = session.get(auth.BACKEND_SESSION_KEY)
    if session.get(auth.SESSION_KEY) != str(user_id) or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = auth.load_backend(backend_path).get_user(user_id)
    if user is None or not constant_time_compare(user.get_session_auth_hash(), auth_hash):
        return None
    return user


def on_logged_out(sender: Any, request: HttpRequest, user: AbstractBaseUser | None, **kwargs: Any) -> None:
    # Sent before the session is flushed, so a database re-check could still find it: the message
    # names the ended session instead.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        publish_access_changed(user.pk, ended_session=session_fingerprint(session_key))


def on_user_saved(sender: Any, instance: AbstractBaseUser, created: bool, update_fields: Any, **kwargs: Any) -> None:
    # A save that names its fields and none of these (last_login at every sign-in) cannot withdraw
    # access; any other save of an existing user makes the sockets re-check, which is cheap.
    if created or (update_fields is not None and not ACCESS_FIELDS & set(update_fields)):
        return
    access_changed_on_commit(instance.pk)


def on_user_deleted(sender: Any, instance: AbstractBaseUser, **kwargs: Any) -> None:
    access_changed_on_commit(instance.pk)


def connect_receivers() -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.signals import user_logged_out
    from django.db.models.signals import post_delete, post_save

    user_model = get_user_model()
    user_logged_out.connect(on_logged_out, dispatch_uid="orket-socket-logout")
    post_save.connect(on_user_saved, sender=user_model, dispatch_uid="orket-socket-user-saved")
    post_delete.connect(on_user_deleted, sender=user_model, dispatch_uid="orket-socket-user-deleted")
