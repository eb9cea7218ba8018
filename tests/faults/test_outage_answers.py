"""What a logged-in browser or API client gets while the database is unreachable, without starting
the cluster: the session store's load fails the way psycopg does when PostgreSQL is down (the session
is the first thing a request reads, before any view). The cluster test test_postgres_restart.py
does the same against a real outage."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection refused'


@pytest.fixture
def logged_in_during_outage(client: Client, make_user, project, monkeypatch: pytest.MonkeyPatch) -> Client:
    user = make_user("ada", password="analytical engine 1843", is_superuser=True)
    client.force_login(user)

    def down(self: SessionStore) -> dict:
        raise OperationalError(REFUSED)

    monkeypatch.setattr(SessionStore, "load", down)
    return client


@pytest.mark.parametrize("path", ["/api/projects/", "/", "/projects/{project}/board/"])
def test_pages_and_the_api_answer_503_with_the_error_shape(logged_in_during_outage: Client, project, path: str):
    response = logged_in_during_outage.get(path.format(project=project.pk))
    assert response.status_code == 503
    assert response.json() == {
        "detail": "The database is unavailable; try again shortly.",
        "code": "database_unavailable",
    }
    assert response["Retry-After"] == "5"


def test_health_endpoints_answer_for_themselves(logged_in_during_outage: Client):
    assert logged_in_during_outage.get("/healthz").status_code == 200
