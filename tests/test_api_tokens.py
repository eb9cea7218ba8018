"""API tokens: one per client, stored hashed, named, expiring, listed and revoked by their owner (and
in the admin), all revoked when the owner's password changes; DRF's old keys are told they retired."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from orket_site.models import ApiToken

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fresh_counts() -> Iterator[None]:
    cache.clear()  # the token endpoint's throttle and the sign-in counts
    yield
    cache.clear()


def issue(username: str, name: str = "", password: str = PASSWORD) -> dict[str, Any]:
    response = Client().post(
        "/api/auth/token/", {"username": username, "password": password, "name": name}, "application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def with_token(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {key}")


def test_a_token_is_named_expires_and_is_stored_only_as_a_digest(
    make_user: Callable[..., AbstractUser], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = make_user("ada")
    before = timezone.now()
    issued = issue("ada", name="ci runner")
    assert set(issued) == {"token", "id", "name", "expires_at"}
    assert issued["name"] == "ci runner"
    assert issued["token"].startswith("orket_")
    expires_at = timezone.datetime.fromisoformat(issued["expires_at"])
    lifetime = timedelta(hours=settings.ORKET_TOKEN_TTL_HOURS)
    assert before + lifetime <= expires_at <= timezone.now() + lifetime
    row = ApiToken.objects.get(pk=issued["id"])
    assert row.user == user
    stored = [str(value) for value in ApiToken.objects.filter(pk=row.pk).values().get().values()]
    assert not any(issued["token"] in value for value in stored), "the key itself is stored"
    assert with_token(issued["token"]).get("/api/projects/").status_code == 200
    assert with_token(issued["token"]).delete("/api/auth/token/").status_code == 204
    logs = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert issued["token"] not in logs and row.digest not in logs


def test_each_client_gets_its_own_token_and_lists_them(make_user: Callable[..., AbstractUser]) -> None:
    make_user("ada")
    make_user("bob")
    laptop = issue("ada", name="laptop")
    ci = issue("ada", name="ci")
    issue("bob", name="bob's")
    response = with_token(ci["token"]).get("/api/auth/tokens/")
    assert response.status_code == 200
    listed = response.json()["results"]
    assert [token["name"] for token in listed] == ["ci", "laptop"]
    assert set(listed[0]) == {"id", "name", "prefix", "created", "expires_at", "last_used", "current"}
    assert [token["current"] for token in listed] == [True, False]
    assert listed[0]["last_used"] is not None and listed[1]["last_used"] is None
    assert laptop["token"].startswith(listed[1]["prefix"]) and len(listed[1]["prefix"]) < len(laptop["token"]) // 2
    assert not any(laptop["token"] in str(value) or ci["token"] in str(value) for t in listed for value in t.values())


def test_delete_revokes_the_token_the_request_was_made_with(make_user: Callable[..., AbstractUser]) -> None:
    make_user("ada")
    used, other = issue("ada", name="used"), issue("ada", name="other")
    assert with_token(used["token"]).delete("/api/auth/token/").status_code == 204
    response = with_token(used["token"]).get("/api/projects/")
    assert (response.status_code, response.json()["code"]) == (401, "authentication_failed")
    assert with_token(other["token"]).get("/api/projects/").status_code == 200


def test_delete_of_the_current_token_needs_a_token(make_user: Callable[..., AbstractUser]) -> None:
    client = Client()
    client.force_login(make_user("ada"))
    response = client.delete("/api/auth/token/")
    assert (response.status_code, response.json()["code"]) == (400, "not_token_authenticated")
    assert Client().delete("/api/auth/token/").status_code == 401


def test_one_revokes_ones_own_tokens_by_id_but_not_anothers(make_user: Callable[..., AbstractUser]) -> None:
    make_user("ada")
    make_user("bob")
    ada_main, ada_old = issue("ada"), issue("ada", name="old")
    bob = issue("bob")
    assert with_token(ada_main["token"]).delete(f"/api/auth/tokens/{ada_old['id']}/").status_code == 204
    assert with_token(ada_old["token"]).get("/api/projects/").status_code == 401
    response = with_token(ada_main["token"]).delete(f"/api/auth/tokens/{bob['id']}/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert with_token(bob["token"]).get("/api/projects/").status_code == 200
    assert with_token(ada_main["token"]).delete("/api/auth/tokens/99999/").status_code == 404


def test_an_expired_token_is_refused_and_not_listed(make_user: Callable[..., AbstractUser]) -> None:
    make_user("ada")
    expired, fresh = issue("ada", name="expired"), issue("ada", name="fresh")
    ApiToken.objects.filter(pk=expired["id"]).update(expiry=timezone.now() - timedelta(seconds=1))
    response = with_token(expired["token"]).get("/api/projects/")
    assert (response.status_code, response.json()["code"]) == (401, "authentication_failed")
    assert [token["name"] for token in with_token(fresh["token"]).get("/api/auth/tokens/").json()["results"]] == [
        "fresh"
    ]


def change_password(user: AbstractUser) -> int:
    client = Client()
    client.force_login(user)
    body = {"old_password": PASSWORD, "new_password1": "a new long pass 42", "new_password2": "a new long pass 42"}
    return client.post("/accounts/password/", body).status_code


def test_a_password_change_revokes_every_token_of_that_user(make_user: Callable[..., AbstractUser]) -> None:
    ada = make_user("ada")
    make_user("bob")
    ada_tokens = [issue("ada", name="one"), issue("ada", name="two")]
    bob = issue("bob")
    assert change_password(ada) == 302
    for token in ada_tokens:
        assert with_token(token["token"]).get("/api/projects/").status_code == 401
    assert with_token(bob["token"]).get("/api/projects/").status_code == 200
    assert issue("ada", password="a new long pass 42")["token"]


def test_a_password_set_elsewhere_revokes_every_token_too(make_user: Callable[..., AbstractUser]) -> None:
    ada = make_user("ada")
    token = issue("ada")
    ada.set_password("set by an administrator 7")
    ada.save()
    assert with_token(token["token"]).get("/api/projects/").status_code == 401


@override_settings(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
)
def test_a_password_hash_upgrade_is_not_a_password_change(make_user: Callable[..., AbstractUser]) -> None:
    from django.contrib.auth.hashers import make_password

    ada = make_user("ada")
    type(ada).objects.filter(pk=ada.pk).update(password=make_password(PASSWORD, hasher="md5"))
    token = issue("ada")  # signing in upgrades the stored hash to the preferred hasher
    ada.refresh_from_db()
    assert ada.password.startswith("pbkdf2_")
    assert with_token(token["token"]).get("/api/projects/").status_code == 200


def test_a_retired_drf_key_is_told_to_request_a_new_token(make_user: Callable[..., AbstractUser]) -> None:
    make_user("ada")
    issue("ada")
    response = with_token("9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b").get("/api/projects/")
    assert response.status_code == 401
    assert response.json() == {
        "detail": "This token was retired; request a new one at POST /api/auth/token/",
        "code": "token_retired",
    }
    assert with_token("orket_not-a-real-key").get("/api/projects/").json()["code"] == "authentication_failed"
    assert Client(HTTP_AUTHORIZATION="Token \xff\xfe").get("/api/projects/").status_code == 401


def test_the_admin_lists_and_revokes_tokens(make_user: Callable[..., AbstractUser]) -> None:
    make_user("ada")
    token = issue("ada", name="laptop")
    staff = Client()
    staff.force_login(make_user("root", is_staff=True, is_superuser=True))
    listing = staff.get("/admin/orket_site/apitoken/")
    assert listing.status_code == 200 and "laptop" in listing.content.decode()
    assert token["token"] not in listing.content.decode()
    assert staff.get("/admin/orket_site/apitoken/add/").status_code == 403
    response = staff.post(f"/admin/orket_site/apitoken/{token['id']}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert with_token(token["token"]).get("/api/projects/").status_code == 401


@pytest.mark.django_db(transaction=True)  # SQLite's schema editor cannot run inside the test's transaction
def test_the_migration_drops_drf_tokens() -> None:
    retire = importlib.import_module("orket_site.migrations.0002_retire_drf_tokens")
    with connection.schema_editor() as editor:
        editor.execute('CREATE TABLE "authtoken_token" ("key" varchar(40) PRIMARY KEY, "user_id" integer)')
        editor.execute("INSERT INTO \"authtoken_token\" VALUES ('9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b', 1)")
        retire.drop_drf_tokens(None, editor)
    assert "authtoken_token" not in connection.introspection.table_names()


def test_only_orkets_token_table_exists() -> None:
    tables = connection.introspection.table_names()
    assert ApiToken._meta.db_table in tables
    assert "knox_authtoken" not in tables, "knox's swapped-out model got a table"
