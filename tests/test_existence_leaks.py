"""A missing project, rock, epic, card or run answers exactly like one of another project the user may
not see: same status, same body, on every route that takes an id (enumerated from the resolver), with
every method, and through the ids that list endpoints take as query parameters or in their body. The
webhook endpoint answers an unknown project exactly like a linked one called without the secret.

The other project's rows are created with one fixed primary key, as in test_security_sweep, so any
integer in any route names an object of that project whatever model the route is about; MISSING is
an id no row has.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from agents.gitea import services as gitea_services
from agents.gitea.models import WebhookDelivery
from agents.models import ModelProfile, Run, RunEvent, Team
from boards.models import Card, Comment, Epic, Project, Rock
from orket_site.seed import seed_first_run
from tests.gitea.fake_gitea import signed_headers

pytestmark = pytest.mark.django_db(transaction=True)

HIDDEN = 777  # rows of a project the user is not a member of
MISSING = 9_876_543  # no row has this id
METHODS = ("get", "post", "put", "patch", "delete")
# Routes not about one project: any signed-in user reads them, so a missing id is rightly a 404.
GLOBAL = {"team-detail", "team-export", "model-profile-detail", "verification-detail"}
QUERY_KEYS = ("project", "epic", "rock", "card", "run")


def _patterns(entries: list[Any]) -> Iterator[URLPattern]:
    for entry in entries:
        if isinstance(entry, URLResolver):
            if entry.namespace != "admin":
                yield from _patterns(entry.url_patterns)
        elif entry.name:
            yield entry


def routes_with_ids() -> list[tuple[str, str, str]]:
    """(name, path to a hidden row, path to a missing row) for every named route taking an id."""
    found: dict[str, tuple[str, str, str]] = {}
    for pattern in _patterns(get_resolver().url_patterns):
        keys = set(pattern.pattern.regex.groupindex)
        if not keys or "format" in keys or pattern.name in GLOBAL:
            continue
        hidden = reverse(pattern.name, kwargs={key: str(HIDDEN) for key in keys})
        missing = reverse(pattern.name, kwargs={key: str(MISSING) for key in keys})
        found.setdefault(hidden, (pattern.name, hidden, missing))
    return list(found.values())


def list_routes() -> list[str]:
    """Paths of the collection routes (no id in the path) under /api/."""
    paths = set()
    for pattern in _patterns(get_resolver().url_patterns):
        if pattern.pattern.regex.groupindex:
            continue
        path = reverse(pattern.name)
        if path.startswith("/api/") and "auth" not in path and "schema" not in path and "docs" not in path:
            paths.add(path)
    return sorted(paths)


OWN = 555  # rows of the user's own project, at fixed ids too


def own_project(user: AbstractUser) -> Project:
    project = Project.objects.create(pk=OWN, name="Own", slug="own")
    project.memberships.create(user=user, role="maintainer")
    rock = Rock.objects.create(pk=OWN, project=project, name="Own rock")
    epic = Epic.objects.create(pk=OWN, project=project, rock=rock, name="Own epic")
    Card.objects.create(pk=OWN, project=project, epic=epic, title="Own card")
    Card.objects.create(pk=OWN + 1, project=project, epic=epic, title="Own other card")
    return project


def references(target: int) -> dict[str, Any]:
    """A body naming `target` wherever a row of another kind is referred to."""
    keys = ("project", "epic", "rock", "card", "run", "depends_on", "before", "after", "model_profile")
    return {key: target for key in keys} | {"title": "x", "name": "x", "slug": f"x-{target}", "body": "x"}


TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def hidden_project() -> Project:
    seed_first_run()
    project = Project.objects.create(pk=HIDDEN, name="Hidden", slug="hidden")
    rock = Rock.objects.create(pk=HIDDEN, project=project, name="Rock")
    epic = Epic.objects.create(pk=HIDDEN, project=project, rock=rock, name="Epic")
    card = Card.objects.create(pk=HIDDEN, project=project, epic=epic, title="Card")
    Comment.objects.create(pk=HIDDEN, card=card, body="comment")
    run = Run.objects.create(
        pk=HIDDEN,
        project=project,
        epic=epic,
        team=Team.objects.order_by("pk").first(),
        model_profile=ModelProfile.objects.get(name="scripted-demo"),
        last_seq=1,
    )
    RunEvent.objects.create(run=run, seq=1, kind="text", data={"text": "hello"})
    saved = gitea_services.gitea_link_save(
        project=project, base_url="http://127.0.0.1:9", owner="o", repo="r", token="t"
    )
    WebhookDelivery.objects.create(
        pk=HIDDEN, project=project, delivery_id="d", event="pull_request", payload={}, payload_sha256="0" * 64
    )
    assert saved.new_secret
    return project


def normalized(response: Any, *ids: int) -> tuple[int, str]:
    if getattr(response, "streaming", False):
        text = b"".join(response.streaming_content).decode(errors="replace")
    else:
        text = response.content.decode(errors="replace")
    text = re.sub(r'(name="csrfmiddlewaretoken" value=")[^"]*', r"\1", text)
    text = re.sub(r'(csrf[-_]token"? content=")[^"]*', r"\1", text)
    text = TIMES.sub("<time>", text)
    text = re.sub(r'"id": ?\d+', '"id":<new>', text)  # rows the two requests created
    for number in ids:
        text = text.replace(str(number), "<id>")
    location = response.get("Location", "")
    for number in ids:
        location = location.replace(str(number), "<id>")
    return response.status_code, text + location


def call(client: Client, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    if method == "get":
        return client.get(path)
    return getattr(client, method)(
        path, data=json.dumps(body or {"title": "x", "name": "x"}), content_type="application/json"
    )


def compare(client: Client, method: str, hidden: str, missing: str, body: Any = None, missing_body: Any = None) -> str:
    seen = normalized(call(client, method, hidden, body), HIDDEN)
    unseen = normalized(call(client, method, missing, missing_body), MISSING)
    if seen != unseen:
        return (
            f"{method.upper()} {hidden}: {seen[0]} {seen[1][:160]!r}\n   vs {missing}: {unseen[0]} {unseen[1][:160]!r}"
        )
    return ""


def test_a_missing_id_answers_like_a_hidden_one_everywhere(make_user: Any) -> None:
    hidden_project()
    outsider: AbstractUser = make_user("outsider")
    own_project(outsider)
    client = Client()
    client.force_login(outsider)
    routes = routes_with_ids()
    assert len(routes) > 40
    problems = [
        problem
        for name, hidden, missing in routes
        if name not in ("logout",)
        for method in METHODS
        if (problem := compare(client, method, hidden, missing))
    ]
    for path in list_routes():
        for key in QUERY_KEYS:
            if problem := compare(client, "get", f"{path}?{key}={HIDDEN}", f"{path}?{key}={MISSING}"):
                problems.append(problem)
        if problem := compare(client, "post", path, path, references(HIDDEN), references(MISSING)):
            problems.append(problem)
    for name, hidden, _ in routes:
        own = hidden.replace(str(HIDDEN), str(OWN))
        if name in ("logout", "gitea-webhook") or own == hidden:
            continue
        for method in ("post", "put", "patch"):
            if problem := compare(client, method, own, own, references(HIDDEN), references(MISSING)):
                problems.append(problem)
    assert not problems, "\n".join(problems)


def _post(project: str, body: bytes, headers: dict[str, str]) -> Any:
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k != "Content-Type"}
    return Client().post(f"/hooks/gitea/{project}/", body, content_type="application/json", **meta)


def test_the_webhook_answers_an_unknown_project_like_a_wrong_signature() -> None:
    project = hidden_project()
    Project.objects.create(pk=HIDDEN + 1, name="Not linked", slug="not-linked")
    body = b'{"action": "opened"}'
    shapes = {
        "unsigned": {"X-Gitea-Event": "pull_request"},
        "wrongly signed": signed_headers("not-the-secret", body, event="pull_request"),
    }
    for shape, headers in shapes.items():
        linked = _post(str(project.pk), body, headers)
        assert linked.status_code == 401, shape
        for other in (str(MISSING), str(HIDDEN + 1), "no-such-slug", "not-linked", project.slug):
            answer = _post(other, body, headers)
            assert (answer.status_code, answer.json()) == (linked.status_code, linked.json()), (shape, other)
    large = b"{" + b" " * (gitea_services.MAX_BODY_BYTES + 10) + b"}"
    linked = _post(str(project.pk), large, shapes["unsigned"])
    unknown = _post(str(MISSING), large, shapes["unsigned"])
    assert linked.status_code == 413 and (unknown.status_code, unknown.json()) == (413, linked.json())
