"""`make run`: migrate, seed, and serve the whole app in one process on the embedded default."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from agents.leases import turns_requeue_orphans
from orket_site.embedded import EmbeddedWorker, serve
from orket_site.seed import seed_first_run


class Command(BaseCommand):
    help = "Migrate, seed first-run data, and serve Orket (HTTP, WebSocket, Celery) in one process."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("ORKET_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("ORKET_PORT", "8000")))
        parser.add_argument("--no-seed", action="store_true", help="Skip creating the admin and demo project.")

    def handle(self, *args: Any, host: str, port: int, no_seed: bool, **options: Any) -> None:
        if not 0 < port < 65536:
            raise CommandError(f"ORKET_PORT must be between 1 and 65535, not {port}")
        call_command("migrate", interactive=False, verbosity=0)
        self._announce_login(no_seed)
        worker = None
        if settings.CELERY_BROKER_URL.startswith("memory://"):
            worker = EmbeddedWorker()
            worker.start()
            requeued = turns_requeue_orphans()
            if requeued:
                self.stdout.write(f"Re-queued {requeued} turns left queued by the last run of this server.")
        else:
            self.stdout.write(
                "REDIS_URL is set: start workers with `celery -A orket_site worker` and `celery -A orket_site beat`."
            )
        url_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        try:
            serve(host, port, on_ready=lambda: self._ready(f"http://{url_host}:{port}/"))
        finally:
            if worker is not None:
                worker.stop()
            self.stdout.write("Orket stopped.")

    def _announce_login(self, no_seed: bool) -> None:
        if no_seed:
            return
        result = seed_first_run()
        if result.demo_created:
            self.stdout.write("Created the demo project.")
        if result.generated_password:
            self.stdout.write(
                f"Log in as {result.admin_username!r} with password {result.generated_password} "
                "(shown once; change it at /accounts/password/)."
            )
        elif result.admin_created:
            self.stdout.write(f"Log in as {result.admin_username!r} with the password from ORKET_ADMIN_PASSWORD.")
        else:
            self.stdout.write(
                f"Log in as {result.admin_username!r} with the password shown on the first run "
                f"(reset it with: .venv/bin/python manage.py changepassword {result.admin_username})."
            )

    def _ready(self, url: str) -> None:
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        self.stdout.write(f"Orket is serving at {url} (database: {db}, data: {settings.DATA_DIR}). Ctrl-C stops it.")
        self.stdout.flush()
