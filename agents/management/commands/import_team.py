import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.errors import InvalidTeamDocument
from agents.services import team_import


class Command(BaseCommand):
    help = "Import a team (with its seats and roles) from Orket's JSON team format."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CommandError(f"Cannot read {file}: {error}") from error
        try:
            team = team_import(document=document)
        except InvalidTeamDocument as error:
            lines = [f"  {problem['path']}: {problem['message']}" for problem in error.extra.get("problems", [])]
            raise CommandError("\n".join([error.message, *lines])) from error
        self.stdout.write(f"Imported team {team.name!r} with {team.seats.count()} seats.")
