"""API fuzzing from the OpenAPI schema with schemathesis: every operation, with generated path
parameters, query strings and bodies (valid and invalid), must never answer 5xx.

The schema is the one `/api/schema/` serves; requests go in-process through Django's WSGI handler
with a member's API token, against a project that holds an epic, cards and a run. As Django's own
test client does, the handler is kept from closing the test's database connection between requests,
so each operation's examples run inside the test's transaction and leave nothing behind.
ORKET_FUZZ_EXAMPLES sets the examples per operation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings

from agents.models import ModelProfile, Run, Team
from agents.services import seed_standard_configuration
from boards.models import Card, Epic, Project, ProjectRole
from orket_site.api_tokens import api_token_create

MAX_EXAMPLES = int(os.environ.get("ORKET_FUZZ_EXAMPLES", "12"))

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
application = get_wsgi_application()


@pytest.fixture
def connection_kept() -> Iterator[None]:
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def member_token(django_user_model: Any) -> str:
    seed_standard_configuration()
    user = django_user_model.objects.create_user("fuzzer", password="fuzzing password 1")
    project = Project.objects.create(name="Fuzzed", slug="fuzzed")
    project.memberships.create(user=user, role=ProjectRole.MAINTAINER)
    epic = Epic.objects.create(project=project, name="Fuzzed epic")
    for number in range(3):
        Card.objects.create(project=project, epic=epic, title=f"Card {number}")
    Run.objects.create(
        project=project,
        epic=epic,
        team=Team.objects.order_by("pk").first(),
        model_profile=ModelProfile.objects.get(name="scripted-demo"),
    )
    _, key = api_token_create(user=user, name="fuzzing")
    return key


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.usefixtures("connection_kept")
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_5xx(case: Any, member_token: str) -> None:
    response = case.call(app=application, headers={"Authorization": f"Token {member_token}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} answered {response.status_code}:\n"
        f"{response.text[:2000]}\nreproduce: {case.as_curl_command()}"
    )


HUGE = 2**63  # one past the largest id a row can have


@pytest.mark.django_db
def test_numbers_too_large_for_the_database_are_refused_not_crashed(member_token: str, django_user_model: Any) -> None:
    from django.test import Client

    api = Client(HTTP_AUTHORIZATION=f"Token {member_token}")
    response = api.get(f"/api/cards/{HUGE}/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    response = api.post("/api/epics/", {"project": HUGE, "name": "x"}, content_type="application/json")
    # SQLite cannot hold the number (400 out_of_range); PostgreSQL compares it and finds no project (404).
    assert (response.status_code, response.json()["code"]) in ((400, "out_of_range"), (404, "not_found"))
    page = Client()
    page.force_login(django_user_model.objects.get(username="fuzzer"))
    assert page.get(f"/projects/{HUGE}/board/").status_code == 404
    assert page.get(f"/runs/{HUGE}/").status_code == 404
