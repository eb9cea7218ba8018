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


# --- hand-made malformed shapes the generator does not produce (security issue, item 8) ------

HUGE_ID = "123456789012345678901234567890"
MALFORMED_BODIES = {
    "deep nesting": b"[" * 100_000,
    "deep nesting in a field": b'{"title": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    "huge integer": b'{"project": ' + b"9" * 5_000 + b', "epic": ' + b"9" * 4_400 + b"}",
    "lone surrogate": b'{"title": "\\ud800", "name": "a\\udc00", "username": "\\ud800", "password": "\\ud800"}',
    "lone surrogate key": b'{"\\ud800": "x"}',
    "nan": b'{"title": NaN, "project": Infinity, "epic": -Infinity}',
    "overflowing float": b'{"title": 1e999, "project": -1e999}',
}
BAD_QUERY_VALUES = ("abc", "1e5", "-1", "0", HUGE_ID, "%ED%A0%80", "%00")
RESOURCE_OF_SEGMENT = {"projects": "project", "cards": "card", "epics": "epic", "runs": "run"}


def operations() -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _real_path(operation: Any, ids: dict[str, int]) -> str:
    """The operation's path with each parameter set to an object of the fuzzed project it names."""
    path = operation.path
    for parameter in operation.path_parameters:
        before = path.split("{" + parameter.name + "}", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        path = path.replace("{" + parameter.name + "}", str(ids.get(RESOURCE_OF_SEGMENT.get(before, ""), 1)))
    return path


def _shape_problem(response: Any, label: str) -> str | None:
    if response.status_code >= 500:
        return f"{label} answered {response.status_code}: {response.content[:300]!r}"
    if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        if not (isinstance(body.get("detail"), str) and isinstance(body.get("code"), str)):
            return f"{label} answered {response.status_code} without the error shape: {body}"
    return None


@pytest.mark.django_db
@pytest.mark.usefixtures("connection_kept")
def test_every_operation_refuses_malformed_shapes_with_4xx(member_token: str) -> None:
    from django.test import Client

    project = Project.objects.get(slug="fuzzed")
    ids = {
        "project": project.pk,
        "epic": Epic.objects.get(project=project).pk,
        "card": Card.objects.filter(project=project).order_by("pk").first().pk,
        "run": Run.objects.get(project=project).pk,
    }
    api = Client(HTTP_AUTHORIZATION=f"Token {member_token}")
    problems: list[str] = []
    for operation in operations():
        method, path = operation.method.lower(), _real_path(operation, ids)
        send = getattr(api, method)
        if operation.body:
            for shape, body in MALFORMED_BODIES.items():
                response = send(path, data=body, content_type="application/json")
                problem = _shape_problem(response, f"{method.upper()} {path} with {shape}")
                if problem:
                    problems.append(problem)
                elif response.status_code < 400:
                    problems.append(f"{method.upper()} {path} accepted {shape} with {response.status_code}")
        if method == "get":
            for parameter in operation.query:
                for value in BAD_QUERY_VALUES:
                    problem = _shape_problem(
                        api.get(f"{path}?{parameter.name}={value}"), f"GET {path}?{parameter.name}={value}"
                    )
                    if problem:
                        problems.append(problem)
        if operation.path_parameters and method != "delete":
            huge = operation.path
            for parameter in operation.path_parameters:
                huge = huge.replace("{" + parameter.name + "}", HUGE_ID)
            response = send(huge, data=b"{}", content_type="application/json") if method != "get" else api.get(huge)
            problem = _shape_problem(response, f"{method.upper()} {huge}")
            if problem:
                problems.append(problem)
            elif response.status_code < 400:
                problems.append(f"{method.upper()} {huge} found something: {response.status_code}")
    assert not problems, "\n".join(problems)
