"""Sign-in is rate limited per account and per address, on the login page and the token endpoint,
and form posts without a CSRF token are refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.test import Client

from boards.models import Project, ProjectRole
from orket_site.login_limits import MAX_FAILURES_PER_ACCOUNT

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fresh_counts() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def sign_in(client: Client, username: str, password: str) -> int:
    return client.post("/accounts/login/", {"username": username, "password": password}).status_code


def test_the_login_page_refuses_even_the_right_password_after_too_many_failures(
    make_user: Callable[..., AbstractUser],
) -> None:
    make_user("alice")
    make_user("bob")
    client = Client()
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        assert sign_in(client, "alice", "wrong") == 200  # the form again, with its error
    response = client.post("/accounts/login/", {"username": "Alice ", "password": PASSWORD})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many failed sign-in attempts. Try again in 15 minutes." in response.content.decode()
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not locked out by alice's failures.
    assert sign_in(Client(), "bob", PASSWORD) == 302


def test_a_successful_sign_in_clears_the_account_count(make_user: Callable[..., AbstractUser]) -> None:
    make_user("carol")
    client = Client()
    for _ in range(MAX_FAILURES_PER_ACCOUNT - 1):
        sign_in(client, "carol", "wrong")
    assert sign_in(client, "carol", PASSWORD) == 302
    other = Client()
    for _ in range(MAX_FAILURES_PER_ACCOUNT - 1):
        assert sign_in(other, "carol", "wrong") == 200
    assert sign_in(other, "carol", PASSWORD) == 302


def test_the_token_endpoint_shares_the_limit(make_user: Callable[..., AbstractUser]) -> None:
    make_user("dave")
    client = Client()
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        response = client.post("/api/auth/token/", {"username": "dave", "password": "wrong"}, "application/json")
        assert response.status_code == 400
    response = client.post("/api/auth/token/", {"username": "dave", "password": PASSWORD}, "application/json")
    assert response.status_code == 429
    assert response.json()["code"] == "too_many_attempts"
    assert sign_in(Client(), "dave", PASSWORD) == 429


def test_form_posts_without_a_csrf_token_are_refused(
    make_user: Callable[..., AbstractUser], project: Project, member_of: Callable[..., AbstractUser]
) -> None:
    make_user("erin")
    strict = Client(enforce_csrf_checks=True)
    assert sign_in(strict, "erin", PASSWORD) == 403
    maintainer = member_of(project, ProjectRole.MAINTAINER)
    strict.force_login(maintainer)
    name_before = project.name
    response = strict.post(f"/projects/{project.pk}/settings/", {"name": "Renamed without a token"})
    assert response.status_code == 403
    project.refresh_from_db()
    assert project.name == name_before
