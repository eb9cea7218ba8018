"""Open WebSockets end with what allowed them: a logout, a password change or removal from the
project closes the user's board and run sockets within seconds; a role that still reads keeps them,
and so does every change that is not theirs. Through the real ASGI application, the real views and
the boards services; the channel layer is the in-memory one, or Redis with ORKET_TEST_REDIS_URL."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from agents.models import ModelProfile, Run, Team
from agents.services import seed_standard_configuration
from boards import services
from boards.events import publish_card_event
from boards.models import Epic, Membership, Project, ProjectRole
from orket_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()
PASSWORD = "first password 12345"
NEW_PASSWORD = "second password 67890"
CLOSE_WITHIN = 5.0


@dataclass
class World:
    project: Project
    run: Run
    user: Any
    browser: Client  # the browser whose session the sockets use
    other_browser: Client  # the same user signed in elsewhere

    def cookie(self, client: Client | None = None) -> bytes:
        value = (client or self.browser).cookies[settings.SESSION_COOKIE_NAME].value
        return f"{settings.SESSION_COOKIE_NAME}={value}".encode()


def signed_in(username: str, password: str) -> Client:
    client = Client()
    assert client.login(username=username, password=password)
    return client


@database_sync_to_async
def make_world(role: str = ProjectRole.MEMBER) -> World:
    seed_standard_configuration()
    project = Project.objects.create(name="Apollo", slug="apollo")
    run = Run.objects.create(
        project=project,
        epic=Epic.objects.create(project=project, name="Landing"),
        team=Team.objects.get(name="standard"),
        model_profile=ModelProfile.objects.get(name="scripted-demo"),
    )
    user = User.objects.create_user("watcher", password=PASSWORD)
    Membership.objects.create(project=project, user=user, role=role)
    return World(project, run, user, signed_in("watcher", PASSWORD), signed_in("watcher", PASSWORD))


async def open_socket(path: str, cookie: bytes) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000"), (b"cookie", cookie)]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    assert connected, code
    return communicator


async def open_board(world: World, client: Client | None = None) -> WebsocketCommunicator:
    communicator = await open_socket(f"/ws/projects/{world.project.pk}/", world.cookie(client))
    assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
    return communicator


async def open_run(world: World) -> WebsocketCommunicator:
    return await open_socket(f"/ws/runs/{world.run.pk}/?after=0", world.cookie())


async def close_code(communicator: WebsocketCommunicator, within: float = CLOSE_WITHIN) -> int | None:
    """The code the server closes the socket with within `within` seconds (frames before it are
    skipped), or None when it stays open. The client side is closed either way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    code = None
    while (left := deadline - loop.time()) > 0:
        try:
            output = await communicator.receive_output(timeout=left)
        except TimeoutError:
            break
        if output["type"] == "websocket.close":
            code = output.get("code")
            break
    await communicator.disconnect()
    return code


async def still_open(world: World, communicator: WebsocketCommunicator) -> bool:
    """Nothing closes the board socket for a second, and it still receives the project's events."""
    if not await communicator.receive_nothing(timeout=1.0):
        return False
    await database_sync_to_async(publish_card_event)(world.project.pk, "card.changed", 41)
    return await communicator.receive_json_from(timeout=5) == {"type": "card.changed", "card": 41}


async def test_logging_out_closes_that_sessions_sockets_and_no_others() -> None:
    world = await make_world()
    board, run, elsewhere = await open_board(world), await open_run(world), await open_board(world, world.other_browser)

    response = await database_sync_to_async(world.browser.post)("/accounts/logout/")
    assert response.status_code == 302

    assert await close_code(board) == 4401
    assert await close_code(run) == 4401
    assert await still_open(world, elsewhere)  # the same user's other session was not logged out
    await elsewhere.disconnect()


async def test_changing_the_password_in_one_browser_closes_the_sockets_of_every_session() -> None:
    world = await make_world()
    board, run = await open_board(world), await open_run(world)
    changer = world.other_browser

    response = await database_sync_to_async(changer.post)(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.content[:500]

    assert await close_code(board) == 4401
    assert await close_code(run) == 4401
    # The browser that changed it keeps its session (Django updates its hash) and may connect again.
    await (await open_board(world, changer)).disconnect()


async def test_setting_a_password_and_saving_the_user_closes_their_sockets() -> None:
    world = await make_world()
    board = await open_board(world)

    @database_sync_to_async
    def reset_password() -> None:
        user = User.objects.get(pk=world.user.pk)
        user.set_password(NEW_PASSWORD)
        user.save()

    await reset_password()
    assert await close_code(board) == 4401


async def test_deactivating_the_user_closes_their_sockets() -> None:
    world = await make_world()
    board = await open_board(world)
    world.user.is_active = False
    await database_sync_to_async(world.user.save)(update_fields=["is_active"])
    assert await close_code(board) == 4401


async def test_removal_from_the_project_through_the_service_closes_its_sockets() -> None:
    world = await make_world()
    board, run = await open_board(world), await open_run(world)

    await database_sync_to_async(services.membership_remove)(project=world.project, user_id=world.user.pk)

    assert await close_code(board) == 4403
    assert await close_code(run) == 4403


async def test_a_role_that_still_reads_keeps_the_sockets_open() -> None:
    world = await make_world(role=ProjectRole.MEMBER)
    board, run = await open_board(world), await open_run(world)

    membership = await database_sync_to_async(services.membership_set)(
        project=world.project, username="watcher", role=ProjectRole.VIEWER
    )
    assert membership.role == ProjectRole.VIEWER

    assert await still_open(world, board)
    assert await run.receive_nothing(timeout=0.5)
    await board.disconnect()
    await run.disconnect()


async def test_sockets_stay_open_when_nothing_of_theirs_changes() -> None:
    world = await make_world()
    board, run = await open_board(world), await open_run(world)

    @database_sync_to_async
    def unrelated_changes() -> None:
        other = User.objects.create_user("neighbour", password=PASSWORD)
        services.membership_set(project=world.project, username="neighbour", role=ProjectRole.MEMBER)
        services.membership_remove(project=world.project, user_id=other.pk)
        other.set_password(NEW_PASSWORD)
        other.save()
        signed_in("watcher", PASSWORD).post("/accounts/logout/")  # another session of theirs ends
        User.objects.get(pk=world.user.pk).save()  # a save that changes nothing makes them re-check

    await unrelated_changes()
    assert await still_open(world, board)
    assert await run.receive_nothing(timeout=0.5)
    await board.disconnect()
    await run.disconnect()


async def test_the_timed_recheck_catches_a_change_no_signal_announced(settings) -> None:
    settings.ORKET_SOCKET_RECHECK_SECONDS = 1
    world = await make_world()
    board = await open_board(world)

    # A queryset update sends no signal, so only the timed re-check can notice it.
    await database_sync_to_async(User.objects.filter(pk=world.user.pk).update)(password="!")

    assert await close_code(board, within=3.0) == 4401
