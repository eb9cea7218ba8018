"""Hand-made malformed input gets a 4xx with the error shape, never a 5xx: JSON bodies Orket cannot
store or send back (lone surrogates, NaN, infinite numbers, giant integers, deep nesting), form
posts with encoded surrogates, bad filters on list endpoints and socket paths with ids no row can
have. Rows written before lone surrogates were refused are still read (the surrogate shown as
U+FFFD) by the board, the card list, the exports and the deliveries list."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.db import DataError, connection, transaction
from django.test import Client

from agents.gitea.models import WebhookDelivery
from agents.models import ModelProfile, Run, RunEvent, Team
from boards.models import Card, Epic, Project, ProjectRole
from orket_site.seed import seed_first_run
from tests.test_security_sweep import ws_refusal

pytestmark = pytest.mark.django_db(transaction=True)

LONE = "\ud800"
REPLACEMENT = "\ufffd"
MALFORMED_BODIES = {
    b"[" * 100_000: "too_deep",
    b'{"username": ' + b"9" * 5000 + b', "password": "x"}': "number_too_large",
    b'{"username": 1e999, "password": "x"}': "number_too_large",
    b'{"username": NaN, "password": "x"}': "parse_error",
    b'{"username": "a\\ud800", "password": "x"}': "invalid_unicode",
    b'{"a\\udc00": 1}': "invalid_unicode",
    b'{"labels": [{"deep": ["\\ud83d"]}]}': "invalid_unicode",
    b'{"username": "admin", "password": "x", "labels": ["a\\u0000"]}': "invalid_unicode",
}


@pytest.fixture
def board(make_user: Any) -> dict[str, Any]:
    cache.clear()  # the token endpoint's throttle counts in the cache; earlier tests may have used it up
    seed_first_run()
    user = make_user("maintainer")
    project = Project.objects.create(name="Probe", slug="probe")
    project.memberships.create(user=user, role=ProjectRole.MAINTAINER)
    epic = Epic.objects.create(project=project, name="Probe epic")
    card = Card.objects.create(project=project, epic=epic, title="Probe card")
    run = Run.objects.create(
        project=project,
        epic=epic,
        team=Team.objects.order_by("pk").first(),
        model_profile=ModelProfile.objects.get(name="scripted-demo"),
    )
    client = Client()
    client.force_login(user)
    return {"user": user, "project": project, "epic": epic, "card": card, "run": run, "client": client}


def assert_error_shape(response: Any, status: int, code: str | None = None) -> None:
    assert response.status_code == status, (response.status_code, response.content[:300])
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"] and isinstance(body.get("code"), str), body
    if code:
        assert body["code"] == code, body


@pytest.mark.parametrize(("body", "code"), MALFORMED_BODIES.items(), ids=[c for c in MALFORMED_BODIES.values()])
def test_malformed_json_bodies_are_refused_with_400_and_a_code(board: dict[str, Any], body: bytes, code: str) -> None:
    before = Card.objects.count()
    assert_error_shape(Client().post("/api/auth/token/", body, content_type="application/json"), 400, code)
    assert_error_shape(board["client"].post("/api/cards/", body, content_type="application/json"), 400, code)
    card_path = f"/api/cards/{board['card'].pk}/"
    assert_error_shape(board["client"].patch(card_path, body, content_type="application/json"), 400, code)
    assert Card.objects.count() == before
    assert Card.objects.get(pk=board["card"].pk).title == "Probe card"


def test_a_card_with_a_lone_surrogate_in_a_json_field_is_refused(board: dict[str, Any]) -> None:
    body = {"project": board["project"].pk, "epic": board["epic"].pk, "title": "ok", "labels": [f"x{LONE}"]}

    raw = json.dumps(body)  # ensure_ascii: the surrogate travels as the escape \ud800, as an attacker sends it
    assert "\\ud800" in raw
    response = board["client"].post("/api/cards/", raw, content_type="application/json")
    assert_error_shape(response, 400, "invalid_unicode")
    assert not Card.objects.filter(title="ok").exists()


def test_the_import_page_refuses_a_lone_surrogate_and_form_posts_never_carry_one(board: dict[str, Any]) -> None:
    project, client = board["project"], board["client"]
    document = '{"name": "E\\ud800", "cards": []}'
    response = client.post(f"/projects/{project.pk}/import/", {"text": document})
    assert response.status_code == 400 and "lone surrogate" in response.context["problems"][0]["message"]
    assert not Epic.objects.filter(name__startswith="E\ufffd").exists()
    # Percent-encoded surrogate bytes in a form body are not UTF-8: Django decodes them as U+FFFD.
    encoded = "section=project&name=Renamed%ED%A0%80&description=d%ED%B0%80"
    response = client.post(
        f"/projects/{project.pk}/settings/", encoded, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code < 500
    project.refresh_from_db()
    assert LONE not in project.name and LONE not in project.description
    assert client.get(f"/projects/{project.pk}/settings/").status_code == 200


def test_bad_filters_on_list_endpoints_answer_400(board: dict[str, Any]) -> None:
    client, run = board["client"], board["run"]
    for path in (
        "/api/runs/?project=abc",
        "/api/runs/?epic=1e5",
        "/api/runs/?status=nonsense",
        f"/api/runs/?project={2**64}",
        f"/api/runs/{run.pk}/events/?limit=-1",
        f"/api/runs/{run.pk}/events/?after=-1",
        f"/api/runs/{run.pk}/events/?after=abc",
        "/api/cards/?epic=1e5",
        f"/api/cards/?project={board['project'].pk}&label=%00",
        f"/api/cards/?project={board['project'].pk}&q=%00",
    ):
        response = client.get(path)
        if "q=%00" in path and connection.vendor != "postgresql":
            assert response.status_code == 200, path  # SQLite compares NUL characters like any other
            continue
        assert_error_shape(response, 400)
    assert client.get(f"/api/runs/?project={board['project'].pk}&status=queued").json()["count"] == 1
    assert client.get(f"/api/runs/{run.pk}/events/?limit=5&after=0").status_code == 200


@pytest.mark.asyncio
async def test_socket_paths_with_ids_no_row_can_have_are_closed_like_missing_ones(
    board: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    cookie = board["client"].cookies["sessionid"].value
    huge = "123456789012345678901234567890"
    with caplog.at_level(logging.WARNING):
        for path in (f"/ws/runs/{huge}/", f"/ws/projects/{huge}/", f"/ws/runs/{2**63}/", "/ws/runs/abc/", "/ws/nope/"):
            assert await ws_refusal(path, None) == 4401, path
            assert await ws_refusal(path, cookie) == 4404, path
        assert await ws_refusal(f"/ws/projects/{board['project'].pk}/", cookie) is None
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, [record.getMessage() for record in errors]
    assert await database_sync_to_async(Run.objects.count)() == 1


def store_lone_surrogates(board: dict[str, Any]) -> None:
    """Rows as an older Orket stored them: lone surrogates inside JSON fields (text columns cannot
    hold one on either database; SQLite keeps JSON as text with \\ud800 escapes)."""
    Card.objects.filter(pk=board["card"].pk).update(labels=[f"label{LONE}"], review_reasons=[{"text": LONE}])
    WebhookDelivery.objects.create(
        project=board["project"], delivery_id="old", event="pull_request", payload={f"key{LONE}": f"value{LONE}"}
    )
    RunEvent.objects.create(run=board["run"], seq=1, kind="text", data={"text": f"said {LONE}"})
    Run.objects.filter(pk=board["run"].pk).update(last_seq=1)


def test_readers_show_rows_that_hold_lone_surrogates(board: dict[str, Any]) -> None:
    if connection.vendor == "postgresql":
        # PostgreSQL's jsonb refuses the escape itself: no such row can exist there, and the input
        # refusal above keeps the API from turning it into a 500 on write.
        with pytest.raises(DataError), transaction.atomic():
            store_lone_surrogates(board)
        return
    store_lone_surrogates(board)
    client, project, epic, run = board["client"], board["project"], board["epic"], board["run"]
    for path in (
        f"/projects/{project.pk}/board/",
        f"/api/projects/{project.pk}/board/",
        f"/api/cards/?project={project.pk}",
        f"/api/cards/{board['card'].pk}/",
        f"/api/epics/{epic.pk}/export/",
        f"/api/projects/{project.pk}/gitea/deliveries/",
        f"/projects/{project.pk}/gitea/deliveries/",
        f"/api/runs/{run.pk}/events/",
        f"/api/runs/{run.pk}/export/",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        content = b"".join(response.streaming_content) if response.streaming else response.content
        text = content.decode("utf-8")  # valid UTF-8 throughout
        assert LONE not in text
        if path.startswith("/api/") and "board" not in path:
            assert REPLACEMENT in text or "\\ufffd" in text, path
