"""Every URL pattern and WebSocket route, enumerated from the resolver rather than listed by hand, is
tried by an anonymous visitor and by a signed-in user who is not a member of the project the ids
point at. Each must be refused (or, for the few public routes, answer without the project's data),
nothing may answer 5xx, and the project's rows must be unchanged afterwards.

The project's rows are created with one fixed primary key, so any integer in any route names an
object of that project whatever model the route is about.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from agents.models import ModelProfile, Run, RunEvent, Team
from boards.models import Card, CardDependency, Comment, Epic, Project, ProjectRole, Rock
from orket_site.asgi import application
from orket_site.routing import websocket_urlpatterns
from orket_site.seed import seed_first_run

pytestmark = pytest.mark.django_db(transaction=True)

ID = 777
OTHER_CARD = 778
MARKER = "sweep-marker-k3q9"
METHODS = ("get", "post", "put", "patch", "delete")
BODY = {
    "project": ID,
    "epic": ID,
    "card": ID,
    "title": "sweep",
    "name": "sweep",
    "slug": "sweep-project",
    "status": "in_progress",
    "body": "sweep",
    "depends_on": OTHER_CARD,
    "model_profile": "scripted-demo",
}

# Routes anybody may reach, with what they may answer to an anonymous visitor.
PUBLIC = {
    "healthz": {200, 405},
    "readyz": {200, 503, 405},
    "login": {200, 302, 405},
    "logout": {200, 302, 405},
    "api-token": {400, 401, 405},  # 401: DELETE revokes the token the request is made with
    "gitea-webhook": {400, 401, 404, 405, 413},
    "metrics": {200, 403, 404, 405},  # 200 only from an address ORKET_METRICS_ALLOWED_IPS lists
    "favicon": {302, 405},  # to the static file
}
# Routes any signed-in user may read: they are not about one project.
GLOBAL_READS = {
    "home",
    "api-root",
    "api-schema",
    "api-docs",
    "team-list",
    "team-detail",
    "team-export",
    "teams-page",
}
# The signed-in user's own account.
OWN_ACCOUNT = {"password_change", "password_change_done"}
# Creating a project of one's own is allowed to every signed-in user.
OWN_CREATES = {("project-list", "post"), ("project-new", "post")}
REFUSED_ANONYMOUS = {401, 403, 404, 405}
REFUSED_SIGNED_IN = {403, 404, 405}


def url_patterns(patterns: list[Any] | None = None, names: tuple[str, ...] = ()) -> Iterator[tuple[str, URLPattern]]:
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name == "admin" or entry.namespace == "admin":
                continue  # Django's admin has its own login; checked separately below
            yield from url_patterns(entry.url_patterns, names)
        elif entry.name:
            yield entry.name, entry


def sweep_paths() -> list[tuple[str, str]]:
    """(name, path) for every named route, with every integer argument pointing at the project."""
    seen: set[str] = set()
    found = []
    for name, pattern in url_patterns():
        keys = set(pattern.pattern.regex.groupindex)
        if "format" in keys:
            continue  # the .json suffix twins of DRF routes resolve to the same views
        kwargs: dict[str, Any] = {key: (OTHER_CARD if key == "depends_on_id" else ID) for key in keys}
        if "project" in kwargs and name == "gitea-webhook":
            kwargs["project"] = str(ID)
        try:
            path = reverse(name, kwargs=kwargs or None)
        except NoReverseMatch as error:
            pytest.fail(f"could not build a path for route {name} with {kwargs}: {error}")
        if path not in seen:
            seen.add(path)
            found.append((name, path))
    return found


def target_project() -> Project:
    """A project, its rock, epic, two cards, a comment and a run, all with fixed ids and the marker."""
    seed_first_run()
    project = Project.objects.create(pk=ID, name=f"Private {MARKER}", slug="private-sweep")
    rock = Rock.objects.create(pk=ID, project=project, name=f"Rock {MARKER}")
    epic = Epic.objects.create(pk=ID, project=project, rock=rock, name=f"Epic {MARKER}")
    card = Card.objects.create(pk=ID, project=project, epic=epic, title=f"Card {MARKER}", description=MARKER)
    Card.objects.create(pk=OTHER_CARD, project=project, epic=epic, title=f"Other {MARKER}")
    Comment.objects.create(pk=ID, card=card, body=MARKER)
    run = Run.objects.create(
        pk=ID,
        project=project,
        epic=epic,
        team=Team.objects.order_by("pk").first(),
        model_profile=ModelProfile.objects.get(name="scripted-demo"),
        last_seq=1,
    )
    RunEvent.objects.create(run=run, seq=1, kind="text", data={"text": MARKER})
    return project


def snapshot(project: Project) -> dict[str, Any]:
    cards = list(Card.objects.filter(project=project).order_by("pk").values())
    return {
        "project": Project.objects.filter(pk=project.pk).values().first(),
        "cards": json.dumps(cards, default=str),
        "comments": Comment.objects.filter(card__project=project).count(),
        "runs": list(Run.objects.filter(project=project).values("status", "cancel_requested")),
        "dependencies": CardDependency.objects.filter(card__project=project).count(),
        "memberships": project.memberships.count(),
    }


def call(client: Client, method: str, path: str) -> Any:
    if method == "get":
        return client.get(path)
    return getattr(client, method)(path, data=json.dumps(BODY), content_type="application/json")


def body_of(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def test_every_route_refuses_anonymous_visitors_and_non_members(make_user: Any) -> None:
    project = target_project()
    outsider: AbstractUser = make_user("outsider")
    before = snapshot(project)
    paths = sweep_paths()
    assert len(paths) > 40, "the resolver walk found too few routes"
    anonymous, signed_in = Client(), Client()
    signed_in.force_login(outsider)
    problems: list[str] = []

    for name, path in paths:
        for method in METHODS:
            response = call(anonymous, method, path)
            status = response.status_code
            if name in PUBLIC:
                if status not in PUBLIC[name]:
                    problems.append(f"anonymous {method.upper()} {path} ({name}) gave {status}")
            elif status == 302:
                if not response["Location"].startswith(reverse("login")):
                    problems.append(f"anonymous {method.upper()} {path} ({name}) redirected to {response['Location']}")
            elif status not in REFUSED_ANONYMOUS:
                problems.append(f"anonymous {method.upper()} {path} ({name}) gave {status}")
            if name not in PUBLIC and MARKER in body_of(response):
                problems.append(f"anonymous {method.upper()} {path} ({name}) showed the project's data")

            if name == "logout":
                continue  # it would sign the non-member out for the rest of the sweep
            response = call(signed_in, method, path)
            status = response.status_code
            text = body_of(response)
            if status >= 500:
                problems.append(f"non-member {method.upper()} {path} ({name}) gave {status}")
            elif MARKER in text:
                problems.append(f"non-member {method.upper()} {path} ({name}) showed the project's data")
            elif name in PUBLIC or name in OWN_ACCOUNT or (name, method) in OWN_CREATES:
                continue
            elif method == "get" and (name in GLOBAL_READS or re.search(r"-list$", name)) and status == 200:
                continue  # lists answer 200 with the member's own rows: the marker check above is the test
            elif status not in REFUSED_SIGNED_IN:
                problems.append(f"non-member {method.upper()} {path} ({name}) gave {status}")

    assert not problems, "\n".join(problems)
    assert snapshot(project) == before, "a refused request changed the project"


def test_the_sweep_reaches_real_objects_for_members(make_user: Any) -> None:
    """Guards the test above: the same paths answer a maintainer, so the refusals were about membership."""
    project = target_project()
    maintainer: AbstractUser = make_user("maintainer")
    project.memberships.create(user=maintainer, role=ProjectRole.MAINTAINER)
    client = Client()
    client.force_login(maintainer)
    reached = 0
    failures = []
    for name, path in sweep_paths():
        if name in PUBLIC:
            continue
        response = client.get(path)
        if response.status_code >= 500:
            failures.append(f"GET {path} ({name}) gave {response.status_code}")
        if response.status_code == 200:
            reached += 1
    assert not failures, "\n".join(failures)
    for path in (f"/api/cards/{ID}/", f"/api/runs/{ID}/", f"/projects/{ID}/board/", f"/runs/{ID}/", f"/epics/{ID}/"):
        assert client.get(path).status_code == 200, path
    assert reached > 20


def test_the_admin_sends_everyone_but_staff_to_its_login(make_user: Any) -> None:
    target_project()
    outsider = make_user("outsider")
    signed_in = Client()
    signed_in.force_login(outsider)
    for client in (Client(), signed_in):
        for path in (reverse("admin:index"), reverse("admin:boards_card_change", args=[ID])):
            response = client.get(path)
            assert response.status_code == 302 and "login" in response["Location"], (path, response.status_code)


async def ws_refusal(path: str, cookie: str | None) -> int | None:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if connected:
        await communicator.disconnect()
        return None
    return int(code) if code is not None else 1000


@pytest.mark.asyncio
async def test_every_websocket_route_refuses_anonymous_visitors_and_non_members(make_user: Any) -> None:
    await database_sync_to_async(target_project)()
    outsider = await database_sync_to_async(make_user)("outsider")
    client = Client()
    await database_sync_to_async(client.force_login)(outsider)
    cookie = client.cookies["sessionid"].value
    routes = [str(route.pattern) for route in websocket_urlpatterns]
    assert len(routes) >= 2
    for route in routes:
        path = "/" + re.sub(r"<\w+:\w+>", str(ID), route)
        assert await ws_refusal(path, None) == 4401, path
        assert await ws_refusal(path, cookie) == 4404, path


# --- malformed input (security issue, item 8) -------------------------------------------------

HUGE_ID = "123456789012345678901234567890"
MALFORMED_BODIES = {
    "deep nesting": b"[" * 100_000,
    "deep nesting in a field": b'{"title": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    "huge integer": b'{"project": ' + b"9" * 5_000 + b', "epic": 1, "title": "x"}',
    "lone surrogate": b'{"title": "\\ud800", "name": "\\udc00x", "body": "\\ud800"}',
    "lone surrogate key": b'{"\\ud800": 1}',
    "nan": b'{"title": NaN, "project": NaN}',
    "overflowing float": b'{"title": 1e999, "project": -1e999}',
}
BAD_QUERIES = (
    "project=abc",
    "epic=1e5",
    "limit=-1",
    "after=-1",
    "page=abc",
    "page_size=-1",
    f"project={HUGE_ID}",
    "status=%ED%A0%80",
    "q=%ED%A0%80",
    "ordering=%00",
)
FORM_BODY = "section=project&name=n%ED%A0%80&description=%ED%B0%80&text=%7B%22a%22%3A%22%5Cud800%22%7D"


def huge_id_paths() -> list[tuple[str, str]]:
    """Every named route with a 30-digit id in each of its parameters."""
    found = []
    for name, pattern in url_patterns():
        keys = set(pattern.pattern.regex.groupindex)
        if not keys or "format" in keys:
            continue
        try:
            found.append((name, reverse(name, kwargs=dict.fromkeys(keys, HUGE_ID))))
        except NoReverseMatch:
            continue  # a parameter that only takes words (slugs, names) has no id to overflow
    return found


def is_api(path: str) -> bool:
    """A JSON endpoint; the OpenAPI schema (YAML) and the docs page (HTML) answer in their own formats."""
    return path.startswith("/api/") and path not in (reverse("api-docs"), reverse("api-schema"))


def error_shape_problem(response: Any, label: str) -> str | None:
    if response.status_code >= 500:
        return f"{label} gave {response.status_code}"
    if not is_api(response.request["PATH_INFO"]) or response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{label} gave {response.status_code} without a JSON body"
    if not (isinstance(body, dict) and isinstance(body.get("detail"), str) and isinstance(body.get("code"), str)):
        return f"{label} gave {response.status_code} with {str(body)[:200]}"
    return None


def test_every_route_answers_malformed_input_with_4xx_and_the_error_shape(make_user: Any) -> None:
    project = target_project()
    maintainer: AbstractUser = make_user("maintainer")
    project.memberships.create(user=maintainer, role=ProjectRole.MAINTAINER)
    member = Client()
    member.force_login(maintainer)
    problems: list[str] = []

    def check(response: Any, label: str) -> None:
        problem = error_shape_problem(response, label)
        if problem:
            problems.append(problem)

    for name, path in sweep_paths():
        if name == "logout":
            continue
        for method in ("post", "put", "patch"):
            for shape, body in MALFORMED_BODIES.items():
                response = getattr(member, method)(path, data=body, content_type="application/json")
                check(response, f"{method.upper()} {path} ({name}) with {shape}")
            response = getattr(member, method)(path, data=FORM_BODY, content_type="application/x-www-form-urlencoded")
            check(response, f"{method.upper()} {path} ({name}) with an encoded surrogate in a form")
        for query in BAD_QUERIES:
            check(member.get(f"{path}?{query}"), f"GET {path}?{query} ({name})")
    for name, path in huge_id_paths():
        for method in METHODS:
            check(call(member, method, path), f"{method.upper()} {path} ({name}) with a 30-digit id")
    assert not problems, "\n".join(problems)


@pytest.mark.asyncio
async def test_every_websocket_route_closes_cleanly_on_ids_no_row_can_have(
    make_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await database_sync_to_async(target_project)()
    outsider = await database_sync_to_async(make_user)("outsider")
    client = Client()
    await database_sync_to_async(client.force_login)(outsider)
    cookie = client.cookies["sessionid"].value
    routes = [str(route.pattern) for route in websocket_urlpatterns if "<" in str(route.pattern)]
    assert len(routes) >= 2
    with caplog.at_level("WARNING"):
        for route in routes:
            for value in (HUGE_ID, str(2**63), "abc", "-1"):
                path = "/" + re.sub(r"<\w+:\w+>", value, route)
                assert await ws_refusal(path, None) == 4401, path
                assert await ws_refusal(path, cookie) == 4404, path
    assert not [record for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]
