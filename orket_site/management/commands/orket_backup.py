from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from boards.models import Project
from orket_site.backup import project_backup


class Command(BaseCommand):
    help = "Save one project (database rows, git workspace, verification fixtures) into a .tar.gz file."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("project", help="The project's id or slug.")
        parser.add_argument("output", type=Path, help="Where to write the backup, e.g. demo.tar.gz.")

    def handle(self, *args: Any, project: str, output: Path, **options: Any) -> None:
        found = Project.objects.filter(pk=int(project)) if project.isdigit() else Project.objects.filter(slug=project)
        chosen = found.first()
        if chosen is None:
            raise CommandError(f"No project with the id or slug {project!r}.")
        manifest = project_backup(project=chosen, output=output)
        rows = sum(manifest["rows"].values())
        self.stdout.write(f"Wrote {output}: project {chosen.slug!r} (id {chosen.pk}), {rows} rows.")
