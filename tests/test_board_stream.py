"""The board stream through the full ASGI stack: session auth, membership, Origin, group events."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from boards.events import publish_card_event
from boards.models import Membership, Project, ProjectRole
from orket_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie_for(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def open_stream(project_id: int, cookie: bytes | None, origin: bytes = b"http://127.0.0.1:8000"):
    headers = [(b"origin", origin), (b"host", b"127.0.0.1:8000")]
    if cookie:
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, f"/ws/projects/{project_id}/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


@database_sync_to_async
def viewer_setup(django_user_model):
    project = Project.objects.create(name="Apollo", slug="apollo")
    user = django_user_model.objects.create_user("watcher", password="pw long enough 1")
    Membership.objects.create(project=project, user=user, role=ProjectRole.VIEWER)
    stranger = django_user_model.objects.create_user("stranger", password="pw long enough 2")
    return project, session_cookie_for(user), session_cookie_for(stranger)


async def test_member_receives_card_events_for_their_project(django_user_model):
    project, cookie, _ = await viewer_setup(django_user_model)
    communicator, connected, _ = await open_stream(project.pk, cookie)
    assert connected
    assert await communicator.receive_json_from(timeout=5) == {"type": "hello", "project": project.pk, "role": "viewer"}
    await sync_to_async(publish_card_event)(project.pk, "card.changed", 41)
    assert await communicator.receive_json_from(timeout=5) == {"type": "card.changed", "card": 41}
    await sync_to_async(publish_card_event)(project.pk + 1000, "card.changed", 42)
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_anonymous_is_refused(django_user_model):
    project, _, _ = await viewer_setup(django_user_model)
    _, connected, code = await open_stream(project.pk, None)
    assert not connected
    assert code == 4401


async def test_non_member_is_refused_as_if_the_project_did_not_exist(django_user_model):
    project, _, stranger_cookie = await viewer_setup(django_user_model)
    _, connected, code = await open_stream(project.pk, stranger_cookie)
    assert not connected
    assert code == 4404


async def test_foreign_origin_is_refused(django_user_model):
    project, cookie, _ = await viewer_setup(django_user_model)
    _, connected, _ = await open_stream(project.pk, cookie, origin=b"https://evil.example")
    assert not connected
