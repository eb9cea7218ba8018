"""Run as a script: the same transition from four threads on the embedded SQLite file database.

Prints one line of JSON: the outcome of each attempt and the number of history rows written.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "orket_site.settings"
    os.environ["ORKET_DATA_DIR"] = tempfile.mkdtemp(prefix="orket-race-")
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from boards import services
    from boards.actors import Actor
    from boards.models import Card, CardHistory, Project

    call_command("migrate", verbosity=0)
    project = Project.objects.create(name="Race", slug="race")
    system = Actor.orket("test")
    epic = services.epic_create(project=project, actor=system, name="Race")
    card = services.card_create(epic=epic, actor=system, title="Contended")
    services.card_transition(card=card, to_status="in_progress", actor=Actor.for_seat("coder"))
    connection.close()
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def attempt(seat: str) -> None:
        try:
            barrier.wait()
            fresh = Card.objects.get(pk=card.pk)
            services.card_transition(card=fresh, to_status="code_review", actor=Actor.for_seat(seat))
            outcomes.append("moved")
        except services.TransitionRefused as refused:
            outcomes.append(refused.code)
        except Exception as error:
            outcomes.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(f"coder_{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    rows = CardHistory.objects.filter(card_id=card.pk, to_status="code_review").count()
    connection.close()
    shutil.rmtree(os.environ["ORKET_DATA_DIR"], ignore_errors=True)
    sys.stdout.write(json.dumps({"outcomes": sorted(outcomes), "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
