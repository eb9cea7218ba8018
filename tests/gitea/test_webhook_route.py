"""Webhook deliveries reach the view through the lean route of orket_site.asgi (no session
machinery, threads of its own) and are answered exactly as through the full stack, with the same
security headers; other methods still go through the full stack."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from agents.gitea.models import DeliveryStatus, WebhookDelivery
from agents.gitea.services import MAX_BODY_BYTES
from benchmarks.bench_webhooks import payload
from orket_site.asgi import application
from tests.gitea.fake_gitea import signed_headers
from tests.gitea.support import link, seeded_project
from tests.gitea.test_webhooks import _django_headers

pytestmark = pytest.mark.django_db(transaction=True)

EVENT, EVENT_TYPE = "pull_request_comment", "pull_request_review_comment"
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy")


@pytest.fixture
def project(settings: Any, tmp_path: Any) -> Iterator[Any]:
    settings.DATA_DIR = tmp_path
    yield seeded_project()
    # The route's threads keep their connections; the test database is flushed and dropped after.
    application.application_mapping["http"].app.release_connections()


def asgi_post(
    path: str, body: bytes, headers: dict[str, str], method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    """One request through the served ASGI application, as daphne would make it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        + [(b"content-length", str(len(body)).encode()), (b"host", b"testserver")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(application(scope, receive, send), 30))
    start = sent[0]
    headers_sent = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return start["status"], headers_sent, b"".join(message.get("body", b"") for message in sent[1:])


def test_a_delivery_through_the_route_is_answered_and_stored_as_through_the_full_stack(project: Any) -> None:
    _, secret = link(project, full_name="bench/hooks")
    body = payload(1)
    path = f"/hooks/gitea/{project.pk}/"
    status, headers, content = asgi_post(path, body, signed_headers(secret, body, event=EVENT, event_type=EVENT_TYPE))
    assert status == 202 and json.loads(content)["code"] == "accepted"
    for name in SECURITY_HEADERS:
        assert headers[name]
    assert headers["x-request-id"] and headers["content-type"] == "application/json"
    assert WebhookDelivery.objects.filter(pk=json.loads(content)["delivery"]).exists()  # stored before answered

    again = asgi_post(
        path, body, signed_headers(secret, body, event=EVENT, event_type=EVENT_TYPE, delivery=str(uuid.uuid4()))
    )
    full = Client().generic(
        "POST", path, data=body, **_django_headers(signed_headers(secret, body, event=EVENT, event_type=EVENT_TYPE))
    )
    assert (again[0], json.loads(again[2])["code"]) == (full.status_code, full.json()["code"])
    for name in SECURITY_HEADERS:
        assert headers[name] == full.headers[name]


def test_refusals_through_the_route_match_the_full_stack(project: Any) -> None:
    _, secret = link(project, full_name="bench/hooks")
    body = payload(1)
    path = f"/hooks/gitea/{project.pk}/"
    wrong = signed_headers("not-the-secret", body, event=EVENT, event_type=EVENT_TYPE)
    status, headers, content = asgi_post(path, body, wrong)
    assert (status, json.loads(content)["code"]) == (401, "signature_invalid")
    assert headers["content-security-policy"]
    unknown = asgi_post("/hooks/gitea/99999/", body, signed_headers(secret, body, event=EVENT, event_type=EVENT_TYPE))
    assert (unknown[0], json.loads(unknown[2])["code"]) == (401, "signature_invalid")  # like a wrong signature
    big = b"x" * (MAX_BODY_BYTES + 1)
    too_large = asgi_post(path, big, signed_headers(secret, big, event=EVENT, event_type=EVENT_TYPE))
    assert too_large[0] == 413
    assert not WebhookDelivery.objects.exclude(status=DeliveryStatus.IGNORED).exists()


def test_other_methods_still_go_through_the_full_stack(project: Any) -> None:
    status, headers, _ = asgi_post(f"/hooks/gitea/{project.pk}/", b"", {}, method="GET")
    assert status == 405 and headers["content-security-policy"]
