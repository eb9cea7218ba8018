"""Model signal receivers of the boards app.

A membership that is created, changes role or is removed (by the services, the admin, or a project
or user being deleted) makes that user's open sockets re-check their access after commit. Model
signals rather than calls in the services, so that no write path can forget it.
"""

from __future__ import annotations

from typing import Any

from boards.models import Membership
from orket_site.socket_access import access_changed_on_commit


def on_membership_changed(sender: Any, instance: Membership, **kwargs: Any) -> None:
    access_changed_on_commit(instance.user_id)


def connect_receivers() -> None:
    from django.db.models.signals import post_delete, post_save

    post_save.connect(on_membership_changed, sender=Membership, dispatch_uid="boards-membership-saved")
    post_delete.connect(on_membership_changed, sender=Membership, dispatch_uid="boards-membership-deleted")
