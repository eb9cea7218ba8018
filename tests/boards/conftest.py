from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from boards import services
from boards.actors import Actor
from boards.models import Card, Epic, Project, ProjectRole

GUARD = Actor.for_seat("integrity_guard", ["integrity_guard", "project_manager"], can_finalize=True)
CODER = Actor.for_seat("coder", ["coder"])


@pytest.fixture
def maintainer(project: Project, member_of: Callable[..., Any]) -> Any:
    return member_of(project, ProjectRole.MAINTAINER)


@pytest.fixture
def epic(project: Project, maintainer: Any) -> Epic:
    return services.epic_create(project=project, actor=Actor.for_user(maintainer), name="Checkout")


@pytest.fixture
def make_card(epic: Epic, maintainer: Any) -> Callable[..., Card]:
    def make(title: str = "A card", target_epic: Epic | None = None, **fields: Any) -> Card:
        return services.card_create(epic=target_epic or epic, actor=Actor.for_user(maintainer), title=title, **fields)

    return make
