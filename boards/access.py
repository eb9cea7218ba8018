"""Project permission helpers used by every API view, page and WebSocket consumer.

A non-member is told the project does not exist (404), so existence is not leaked; a member whose
role is too weak is told so (403). Superusers act as maintainers everywhere.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from boards.errors import Forbidden, NotFound
from boards.models import Membership, Project, ProjectRole

AnyUser = AbstractBaseUser | AnonymousUser


def project_role_of(user: AnyUser, project_id: int) -> str | None:
    """The user's role in the project, or None when they may not see it at all."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return ProjectRole.MAINTAINER if Project.objects.filter(pk=project_id).exists() else None
    return Membership.objects.filter(project_id=project_id, user_id=user.pk).values_list("role", flat=True).first()


def role_allows(role: str | None, minimum: str) -> bool:
    return role is not None and ProjectRole.rank(role) >= ProjectRole.rank(minimum)


def require_project_role(user: AnyUser, project_id: Any, minimum: str = ProjectRole.VIEWER) -> str:
    """Return the user's role when it is at least `minimum`; raise NotFound or Forbidden otherwise."""
    try:
        project_id = int(project_id)
    except (TypeError, ValueError) as error:
        raise NotFound("Project not found.") from error
    role = project_role_of(user, project_id)
    if role is None:
        raise NotFound("Project not found.")
    if not role_allows(role, minimum):
        raise Forbidden(f"This needs the {minimum} role in the project; you are a {role}.")
    return role


def role_or_404(request: HttpRequest, project_id: Any, minimum: str = ProjectRole.VIEWER) -> str:
    """For browser pages: the viewer's role; Http404 for non-members, Forbidden (left to the caller)
    for a role weaker than `minimum`."""
    try:
        return require_project_role(request.user, project_id, minimum)
    except NotFound as error:
        raise Http404(error.message) from error


def visible_projects(user: AnyUser) -> QuerySet[Project]:
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user_id=user.pk)
