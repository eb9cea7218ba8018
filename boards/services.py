"""Writes for the boards app. Every function validates, writes in one transaction, and raises a
BoardsError subclass when the change is refused, leaving the database as it was."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import slugify

from boards.errors import IllegalState, InvalidInput, NotFound
from boards.models import Membership, Project, ProjectRole

User = get_user_model()


def _unique_slug(name: str, requested: str = "") -> str:
    base = slugify(requested or name)[:70] or "project"
    if requested:
        if Project.objects.filter(slug=base).exists():
            raise InvalidInput(f"A project with the slug {base!r} already exists.", code="slug_taken")
        return base
    slug, counter = base, 2
    while Project.objects.filter(slug=slug).exists():
        slug = f"{base}-{counter}"
        counter += 1
    return slug


@transaction.atomic
def project_create(*, name: str, creator: AbstractBaseUser | None, slug: str = "", description: str = "") -> Project:
    name = name.strip()
    if not name:
        raise InvalidInput("A project needs a name.", code="name_required")
    project = Project.objects.create(
        name=name, slug=_unique_slug(name, slug), description=description, created_by=creator
    )
    if creator is not None:
        Membership.objects.create(project=project, user=creator, role=ProjectRole.MAINTAINER)
    return project


@transaction.atomic
def project_update(*, project: Project, name: str | None = None, description: str | None = None) -> Project:
    if name is not None:
        if not name.strip():
            raise InvalidInput("A project needs a name.", code="name_required")
        project.name = name.strip()
    if description is not None:
        project.description = description
    project.save()
    return project


def _maintainer_count(project: Project) -> int:
    return Membership.objects.filter(project=project, role=ProjectRole.MAINTAINER).count()


@transaction.atomic
def membership_set(*, project: Project, username: str, role: str) -> Membership:
    """Add a user to the project or change their role. The last maintainer cannot step down."""
    if role not in ProjectRole.values:
        raise InvalidInput(f"Unknown role {role!r}; use one of {', '.join(ProjectRole.values)}.", code="bad_role")
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotFound(f"No active user named {username!r}.", code="user_not_found")
    Project.objects.select_for_update().filter(pk=project.pk).first()
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None:
        return Membership.objects.create(project=project, user=user, role=role)
    if membership.role == ProjectRole.MAINTAINER and role != ProjectRole.MAINTAINER and _maintainer_count(project) == 1:
        raise IllegalState("The project must keep at least one maintainer.", code="last_maintainer")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, project: Project, user_id: int) -> None:
    Project.objects.select_for_update().filter(pk=project.pk).first()
    membership = Membership.objects.filter(project=project, user_id=user_id).first()
    if membership is None:
        raise NotFound("That user is not a member of this project.", code="not_a_member")
    if membership.role == ProjectRole.MAINTAINER and _maintainer_count(project) == 1:
        raise IllegalState("The project must keep at least one maintainer.", code="last_maintainer")
    membership.delete()
