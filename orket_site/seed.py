"""First-run data: an administrator and a demo project, created only when none exist."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from agents.seed_data import DEMO_EPIC
from agents.services import seed_standard_configuration
from boards.actors import Actor
from boards.models import Membership, Project, ProjectRole
from boards.services import epic_import, project_create

DEMO_PROJECT_SLUG = "demo"


@dataclass(frozen=True)
class SeedResult:
    admin_username: str
    generated_password: str | None
    admin_created: bool
    demo_created: bool


@transaction.atomic
def seed_first_run() -> SeedResult:
    User = get_user_model()
    username = os.environ.get("ORKET_ADMIN_USER", "admin").strip() or "admin"
    admin = User.objects.filter(username=username).first()
    generated: str | None = None
    admin_created = False
    if admin is None and not User.objects.filter(is_superuser=True).exists():
        password = os.environ.get("ORKET_ADMIN_PASSWORD", "")
        if not password:
            generated = password = secrets.token_urlsafe(15)
        admin = User.objects.create_superuser(username=username, email="", password=password)
        admin_created = True
    seed_standard_configuration()
    demo_created = False
    if not Project.objects.exists():
        owner = admin or User.objects.filter(is_superuser=True).order_by("pk").first()
        demo = project_create(
            name="Demo",
            slug=DEMO_PROJECT_SLUG,
            description=(
                "A demo project seeded on first run: press Run on its epic to watch the team work. Its cards have "
                "no verification fixtures, so it does not require a passed verification before done; turn that "
                "on in the project settings once you add fixtures."
            ),
            creator=owner,
            require_verification=False,
        )
        epic_import(project=demo, data=DEMO_EPIC, actor=Actor.orket("seed"))
        demo_created = True
    elif admin is not None:
        demo = Project.objects.filter(slug=DEMO_PROJECT_SLUG).first()
        if demo is not None and admin_created:
            Membership.objects.get_or_create(project=demo, user=admin, defaults={"role": ProjectRole.MAINTAINER})
    return SeedResult(username, generated, admin_created, demo_created)
