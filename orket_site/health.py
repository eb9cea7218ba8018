"""Liveness and readiness endpoints (public)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from orket_site.celery import app as celery_app

logger = logging.getLogger("orket.health")

BROKER_TIMEOUT_SECONDS = 2.0


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_problem() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        return f"database: {error.__class__.__name__}: {error}".strip()
    return None


def _broker_problem() -> str | None:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as error:
        return f"broker: {error.__class__.__name__}: {error}".strip()
    return None


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_problem(), "broker": _broker_problem()}
    failed = {name: problem for name, problem in checks.items() if problem}
    body = {
        "status": "unavailable" if failed else "ready",
        "checks": {name: ("failed" if name in failed else "ok") for name in checks},
        "mode": "embedded" if settings.EMBEDDED else "production",
    }
    if failed:
        body["detail"] = "; ".join(failed.values())
        body["code"] = "not_ready"
        logger.warning("not ready: %s", body["detail"])
        return JsonResponse(body, status=503)
    return JsonResponse(body)
