"""Pages, login required by default, health endpoints, request ids, admin console and logging."""

from __future__ import annotations

import json
import logging

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client

from orket_site.celery import app as celery_app
from orket_site.logging import JsonFormatter, RequestContextFilter, TextFormatter
from orket_site.middleware import is_database_outage

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/", "/accounts/password/", "/admin/"])
def test_pages_redirect_anonymous_users_to_login(client: Client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_login_page_is_public_and_wrong_credentials_get_a_plain_message(client: Client, make_user):
    make_user("ada", password="analytical engine 1843")
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "ada", "password": "nope"})
    assert response.status_code == 200
    assert b"did not match" in response.content
    assert b"ada" in response.content  # the username is kept, the password is not echoed
    assert b"nope" not in response.content


def test_login_lists_my_projects_and_logout_ends_the_session(client: Client, member_of, project):
    user = member_of(project, "viewer")
    response = client.post("/accounts/login/", {"username": user.username, "password": "correct horse battery"})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert b"Apollo" in home.content
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_password_change_works(client: Client, make_user):
    user = make_user("ada", password="analytical engine 1843")
    client.force_login(user)
    response = client.post(
        "/accounts/password/",
        {
            "old_password": "analytical engine 1843",
            "new_password1": "difference engine 1822",
            "new_password2": "difference engine 1822",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("difference engine 1822")


def test_healthz_is_public(client: Client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_database_and_broker(client: Client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_answers_503_naming_the_broker_when_it_is_unreachable(client: Client):
    # Celery 5.6 resolves broker_write_url from broker_url once, when configured: set both.
    original = celery_app.conf.broker_url, celery_app.conf.broker_write_url
    celery_app.conf.broker_url = celery_app.conf.broker_write_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/readyz")
    finally:
        celery_app.conf.broker_url, celery_app.conf.broker_write_url = original
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "ok", "broker": "failed"}
    assert body["code"] == "not_ready"
    assert body["detail"].startswith("broker:")


def test_request_id_is_echoed_when_well_formed_and_replaced_otherwise(client: Client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert replaced != "bad id\nwith newline" and len(replaced) == 32


@pytest.mark.parametrize(
    "path",
    [
        "/admin/boards/project/",
        "/admin/boards/membership/",
        "/admin/auth/user/",
        "/admin/orket_site/apitoken/",
    ],
)
def test_admin_console_lists_models_for_superusers(client: Client, django_user_model, project, path):
    admin = django_user_model.objects.create_superuser("root", password="admin password 1")
    client.force_login(admin)
    assert client.get(path).status_code == 200
    assert client.get(path, {"q": "apollo"}).status_code == 200


def test_admin_console_is_closed_to_non_staff(client: Client, make_user):
    client.force_login(make_user())
    response = client.get("/admin/")
    assert response.status_code == 302


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "orket.test", "levelname": "INFO", "levelno": 20, "msg": message})
    for key, value in extra.items():
        setattr(record, key, value)
    RequestContextFilter().filter(record)
    return record


def test_json_log_lines_carry_time_level_logger_message_and_context():
    line = JsonFormatter().format(_record("hello %s", request_id="r1", user_id=7, status_code=201))
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "orket.test"
    assert entry["request_id"] == "r1" and entry["user_id"] == 7 and entry["status_code"] == 201
    assert entry["time"].endswith("+00:00")


def test_text_log_lines_are_readable():
    line = TextFormatter().format(_record("hello", request_id="r1", user_id=7))
    assert "INFO" in line and "orket.test" in line and "req=r1" in line and line.endswith("hello")


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused'), True),
        (OperationalError("terminating connection due to administrator command"), True),
        (OperationalError("database is locked"), True),
        (InterfaceError("connection already closed"), True),
        (OperationalError("no such table: boards_project"), False),
        (ValueError("connection"), False),
    ],
)
def test_only_real_database_outages_become_503(error, outage):
    assert is_database_outage(error) is outage
