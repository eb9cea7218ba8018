import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.models import Team
from agents.services import team_export


class Command(BaseCommand):
    help = "Print a team in Orket's JSON team format."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        team = Team.objects.filter(name=name).first()
        if team is None:
            raise CommandError(f"No team named {name!r}.")
        self.stdout.write(json.dumps(team_export(team=team), indent=2))
