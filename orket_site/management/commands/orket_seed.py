from typing import Any

from django.core.management.base import BaseCommand

from orket_site.seed import seed_first_run


class Command(BaseCommand):
    help = "Create the administrator and the demo project when none exist."

    def handle(self, *args: Any, **options: Any) -> None:
        result = seed_first_run()
        if result.admin_created:
            self.stdout.write(f"Created administrator {result.admin_username!r}.")
        if result.generated_password:
            self.stdout.write(f"Generated password (shown once): {result.generated_password}")
        if result.demo_created:
            self.stdout.write("Created the demo project.")
