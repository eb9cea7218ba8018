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
    "model-profile-list",
    "model-profile-detail",
}
# The signed-in user's own account.
OWN_ACCOUNT = {"password_change", "password_change_done"}
# Creating a project of one's own is allowed to every signed-in user.
OWN_CREATES = {("project-list", "post")}
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
        path = "/" + re.sub(r"<int:\w+>", str(ID), route)
        assert await ws_refusal(path, None) == 4401, path
        assert await ws_refusal(path, cookie) == 4404, path
