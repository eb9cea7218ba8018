"""`python manage.py run_epic EPIC [--profile NAME] [--wait]`: start a run and follow it."""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from agents import selectors, services
from agents.models import Run
from agents.run_events import event_frame
from agents.selectors import events_after
from boards.models import Epic
from orket_site.errors import OrketError

POLL_SECONDS = 0.2


def describe(frame: dict[str, Any]) -> str:
    kind = frame["kind"]
    where = f" card #{frame['card']}" if frame.get("card") else ""
    details = {k: v for k, v in frame.items() if k not in {"seq", "kind", "turn", "card", "at"}}
    if kind in {"text", "reasoning"}:
        return f"{frame['seq']:>5} {kind}{where}: {details.get('text', '').strip()[:200]}"
    return f"{frame['seq']:>5} {kind}{where} {json.dumps(details, default=str)[:300]}"


class Command(BaseCommand):
    help = "Run an epic with the agent team and print its progress; exits non-zero when the run fails."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("epic", type=int, help="The epic's id.")
        parser.add_argument("--profile", help="Model profile name or id (default: the scripted demo).")
        parser.add_argument("--wait", action="store_true", help="Follow the run until it ends.")
        parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds to wait with --wait.")

    def handle(self, *args: Any, epic: int, profile: str | None, wait: bool, timeout: float, **options: Any) -> None:
        target = Epic.objects.filter(pk=epic).first()
        if target is None:
            raise CommandError(f"There is no epic {epic}.")
        try:
            chosen = selectors.profile_by_reference(profile) if profile else None
            run = services.run_start(epic=target, profile=chosen)
        except OrketError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Run {run.pk} of epic {target.pk} {target.name!r} queued with {run.model_profile.name}.")
        if not wait:
            return
        worker = None
        if settings.CELERY_BROKER_URL.startswith("memory://"):
            from orket_site.embedded import EmbeddedWorker

            worker = EmbeddedWorker()
            worker.start()
        try:
            final = self._follow(run.pk, timeout)
        finally:
            if worker is not None:
                worker.stop()
        self.stdout.write(f"Run {final.pk} {final.status}: {final.status_reason}")
        if final.status != "succeeded":
            raise CommandError(f"run {final.pk} {final.status}")

    def _follow(self, run_id: int, timeout: float) -> Run:
        seen = 0
        deadline = time.monotonic() + timeout
        while True:
            for event in events_after(Run(pk=run_id), seen):
                self.stdout.write(describe(event_frame(event)))
                seen = event.seq
            run = Run.objects.get(pk=run_id)
            if run.is_final and run.last_seq <= seen:
                return run
            if time.monotonic() > deadline:
                raise CommandError(f"run {run_id} still {run.status} after {timeout:.0f} s")
            time.sleep(POLL_SECONDS)
