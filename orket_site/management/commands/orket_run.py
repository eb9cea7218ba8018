"""`make run`: migrate, seed, and serve the whole app in one process on the embedded default."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from agents.engine import ollama_answers
from agents.models import ModelProfile
from agents.services import turns_requeue_orphans
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
        login = self._login_line(no_seed)
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
        model = model_line()
        url_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        try:
            serve(host, port, on_ready=lambda: self._ready(f"http://{url_host}:{port}/", login, model))
        finally:
            if worker is not None:
                worker.stop()
            self.stdout.write("Orket stopped.")

    def _login_line(self, no_seed: bool) -> str:
        if no_seed:
            return "Log in with an account made by `manage.py createsuperuser` (--no-seed made none)."
        result = seed_first_run()
        if result.demo_created:
            self.stdout.write("Created the demo project.")
        if result.generated_password:
            return (
                f"Log in as {result.admin_username!r} with password {result.generated_password} "
                "(shown once; change it at /accounts/password/)."
            )
        if result.admin_created:
            return f"Log in as {result.admin_username!r} with the password from ORKET_ADMIN_PASSWORD."
        return (
            f"Log in as {result.admin_username!r} with the password shown on the first run "
            f"(reset it with: .venv/bin/python manage.py changepassword {result.admin_username})."
        )

    def _ready(self, url: str, login: str, model: str) -> None:
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        lines = [
            f"Orket is serving at {url} (Ctrl-C stops it).",
            f"  User:  {login}",
            f"  Data:  {settings.DATA_DIR} (database: {db})",
            f"  Model: {model}",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()


def model_line() -> str:
    """Which model runs will use when a project chooses none: Ollama when it answers, else the scripted team."""
    ollama = ModelProfile.objects.filter(name="ollama-local").first()
    if ollama is not None and ollama_answers(ollama.base_url, timeout=1.0):
        return f"Ollama answers at {ollama.base_url}; runs use profile {ollama.name} (model {ollama.model})."
    where = f" at {ollama.base_url}" if ollama is not None else ""
    return (
        f"no Ollama answered{where}; runs use the scripted team (profile scripted-demo, no model). "
        "Add a profile on the Model profiles page."
    )
