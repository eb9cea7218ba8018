from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
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
    # Agents finishing cards without a fixture is what most tests exercise; the verification
    # requirement has tests of its own.
    return Project.objects.create(name="Apollo", slug="apollo", require_verification=False)


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


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for processes under test, dropped afterwards."""
    from tests.services import postgres_url

    server_url = postgres_url()
    name = f"orket_it_{uuid.uuid4().hex[:12]}"
    admin_url = server_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
