"""Settings for the test suite: SQLite and in-memory layers by default; PostgreSQL and Redis when
ORKET_TEST_DATABASE_URL and ORKET_TEST_REDIS_URL are set."""

import os
import tempfile

for test_name, name in (("ORKET_TEST_DATABASE_URL", "DATABASE_URL"), ("ORKET_TEST_REDIS_URL", "REDIS_URL")):
    value = os.environ.get(test_name, "").strip()
    if value:
        os.environ[name] = value
    else:
        os.environ.pop(name, None)
os.environ.setdefault("ORKET_DATA_DIR", tempfile.mkdtemp(prefix="orket-test-"))
os.environ.pop("ORKET_ENV", None)

from orket_site.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, as in the embedded default, so worker threads share it in WAL mode; an in-memory
    # shared-cache database locks whole tables between connections instead.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}  # noqa: F405
elif DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    # A name of its own per run, so two test runs on one server never fight over one database.
    DATABASES["default"]["TEST"] = {"NAME": f"test_orket_{os.getpid()}"}  # noqa: F405
    # Connections opened on worker threads (consumers, sync_to_async) close after each use, so
    # none is left holding the test database when it is dropped.
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

# A queue of its own per test run, so concurrent runs sharing one Redis never take each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = f"orket-test-{os.getpid()}"
