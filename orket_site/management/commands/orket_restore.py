from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from orket_site.backup import BackupError, project_restore


class Command(BaseCommand):
    help = "Restore a project from a file written by orket_backup; all of it or nothing."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("source", type=Path, help="The backup file.")

    def handle(self, *args: Any, source: Path, **options: Any) -> None:
        try:
            report = project_restore(source=source)
        except BackupError as error:
            raise CommandError(str(error)) from error
        rows = sum(report.rows.values())
        self.stdout.write(
            f"Restored project {report.project_id}: {rows} rows, {report.workspace_files} workspace files, "
            f"{report.fixture_files} fixture files."
        )
        if report.created_users:
            names = ", ".join(report.created_users)
            self.stdout.write(
                f"Created users without a password: {names}. Set one with `manage.py changepassword <name>`."
            )
