"""Sign-in is rate limited per account and per address at every door where a password is presented
(login page, token API, admin login, password change forms), with one count shared by all of them,
and form posts without a CSRF token are refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.test import Client

from boards.models import Project, ProjectRole
from orket_site.login_limits import MAX_FAILURES_PER_ACCOUNT, MAX_FAILURES_PER_ADDRESS

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


def token_request(client: Client, username: str, password: str) -> int:
    body = {"username": username, "password": password}
    return client.post("/api/auth/token/", body, "application/json").status_code


def admin_sign_in(client: Client, username: str, password: str) -> int:
    body = {"username": username, "password": password, "next": "/admin/"}
    return client.post("/admin/login/", body).status_code


def test_the_token_endpoint_shares_the_limit(make_user: Callable[..., AbstractUser]) -> None:
    make_user("dave")
    client = Client()
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        assert token_request(client, "dave", "wrong") == 400
    response = client.post("/api/auth/token/", {"username": "dave", "password": PASSWORD}, "application/json")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json() == {
        "detail": "Too many failed sign-in attempts. Try again in 15 minutes.",
        "code": "too_many_attempts",
    }
    assert sign_in(Client(), "dave", PASSWORD) == 429


def test_the_admin_login_refuses_even_the_right_password_after_too_many_failures(
    make_user: Callable[..., AbstractUser],
) -> None:
    make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        assert admin_sign_in(client, "root", "wrong") == 200  # the admin form again, with its error
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still sent to the admin login


@pytest.mark.parametrize("path", ["/accounts/password/", "/admin/password_change/"])
def test_the_password_change_forms_count_and_refuse_even_the_right_old_password(
    make_user: Callable[..., AbstractUser], path: str
) -> None:
    user = make_user("frank", is_staff=True)
    client = Client()
    client.force_login(user)

    def change(old_password: str) -> int:
        body = {
            "old_password": old_password,
            "new_password1": "a new long pass 42",
            "new_password2": "a new long pass 42",
        }
        return client.post(path, body).status_code

    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        assert change("wrong") == 200  # the form again, with its error
    response = client.post(
        path, {"old_password": PASSWORD, "new_password1": "a new long pass 42", "new_password2": "a new long pass 42"}
    )
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    user.refresh_from_db()
    assert user.check_password(PASSWORD), "the password was changed while the account was locked"
    assert token_request(Client(), "frank", PASSWORD) == 429  # the form's failures count everywhere


def test_a_right_old_password_changes_the_password(make_user: Callable[..., AbstractUser]) -> None:
    user = make_user("grace")
    client = Client()
    client.force_login(user)
    body = {"old_password": PASSWORD, "new_password1": "a new long pass 42", "new_password2": "a new long pass 42"}
    assert client.post("/accounts/password/", body).status_code == 302
    user.refresh_from_db()
    assert user.check_password("a new long pass 42")


def test_every_door_adds_to_one_count(make_user: Callable[..., AbstractUser]) -> None:
    user = make_user("heidi", is_staff=True)
    per_door = MAX_FAILURES_PER_ACCOUNT // 2
    for _ in range(per_door):
        assert admin_sign_in(Client(), "heidi", "wrong") == 200
    for _ in range(MAX_FAILURES_PER_ACCOUNT - per_door - 1):
        assert token_request(Client(), "heidi", "wrong") == 400
    changer = Client()
    changer.force_login(user)
    body = {"old_password": "wrong", "new_password1": "a new long pass 42", "new_password2": "a new long pass 42"}
    assert changer.post("/accounts/password/", body).status_code == 200
    assert sign_in(Client(), "heidi", PASSWORD) == 429
    assert admin_sign_in(Client(), "heidi", PASSWORD) == 429
    assert token_request(Client(), "heidi", PASSWORD) == 429


def test_authenticate_called_from_anywhere_counts(make_user: Callable[..., AbstractUser]) -> None:
    """A door added later that calls authenticate(), even without a request, is limited too."""
    make_user("ivan")
    for _ in range(MAX_FAILURES_PER_ACCOUNT):
        assert authenticate(username="ivan", password="wrong") is None
    assert authenticate(username="ivan", password=PASSWORD) is None
    assert sign_in(Client(), "ivan", PASSWORD) == 429


def test_one_address_is_limited_across_accounts(make_user: Callable[..., AbstractUser]) -> None:
    make_user("judy")
    guesser = Client(REMOTE_ADDR="192.0.2.7")
    for number in range(MAX_FAILURES_PER_ADDRESS):
        assert sign_in(guesser, f"guess{number}", "wrong") == 200  # (the token API throttles sooner)
    assert token_request(guesser, "judy", PASSWORD) == 429
    assert admin_sign_in(guesser, "judy", PASSWORD) == 429
    assert token_request(Client(REMOTE_ADDR="192.0.2.8"), "judy", PASSWORD) == 200


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
