from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from rest_framework.test import APIClient

from boards.models import Membership, Project, ProjectRole

User = get_user_model()


@pytest.fixture
def make_user(db: None) -> Callable[..., AbstractUser]:
    counter = {"n": 0}

    def make(username: str | None = None, password: str = "correct horse battery", **extra: object) -> AbstractUser:
        counter["n"] += 1
        return User.objects.create_user(username=username or f"user{counter['n']}", password=password, **extra)

    return make


@pytest.fixture
def project(db: None) -> Project:
    return Project.objects.create(name="Apollo", slug="apollo")


@pytest.fixture
def member_of(make_user: Callable[..., AbstractUser]) -> Callable[[Project, str], AbstractUser]:
    """Create a user holding `role` in `project`."""

    def make(project: Project, role: str = ProjectRole.MEMBER) -> AbstractUser:
        user = make_user(f"{role}-{project.slug}-{User.objects.count()}")
        Membership.objects.create(project=project, user=user, role=role)
        return user

    return make


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def api_as(api: APIClient) -> Callable[[AbstractUser], APIClient]:
    def login(user: AbstractUser) -> APIClient:
        api.force_authenticate(user)
        return api

    return login
