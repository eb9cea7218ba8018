"""python manage.py import_epic FILE --project SLUG: import an epic from Orket's JSON format."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from boards.actors import Actor
from boards.models import Project, Rock
from boards.services import ImportInvalid, epic_import

MAX_FILE_BYTES = 20 * 1024 * 1024


class Command(BaseCommand):
    help = "Import an epic (with its cards and dependencies) from a JSON file into a project, all or nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Path to the JSON file, or - for standard input.")
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--rock", type=int, default=None, help="Put the epic under this rock (id).")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with the slug {options['project']!r}.")
        rock = None
        if options["rock"] is not None:
            rock = Rock.objects.filter(pk=options["rock"], project=project).first()
            if rock is None:
                raise CommandError(f"No rock {options['rock']} in project {project.slug!r}.")
        raw = self._read(options["file"])
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            raise CommandError(f"The file is not valid JSON: {error}") from error
        try:
            epic = epic_import(project=project, data=data, actor=Actor.orket("import_epic"), rock=rock)
        except ImportInvalid as error:
            for problem in error.extra.get("errors", []):
                self.stderr.write(f"{problem['path']}: {problem['message']}")
            raise CommandError(error.message) from error
        count = epic.cards.count()
        self.stdout.write(self.style.SUCCESS(f"Imported epic {epic.pk} {epic.name!r} with {count} cards."))

    def _read(self, name: str) -> str:
        if name == "-":
            return self.stdin_text()
        path = Path(name)
        if not path.is_file():
            raise CommandError(f"No such file: {name}")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CommandError(f"The file is larger than {MAX_FILE_BYTES} bytes.")
        return path.read_text(encoding="utf-8")

    def stdin_text(self) -> str:
        return sys.stdin.read(MAX_FILE_BYTES + 1)
