"""The Celery application. Tasks run in worker processes (or the embedded worker thread), never in a
web request."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orket_site.settings")

app = Celery("orket")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
