"""Database connections of request threads.

Under daphne, Django runs each HTTP request's view on a thread made for that request, which ends
with it. A persistent connection (CONN_MAX_AGE) left on such a thread is never used again, yet
stays open until it is garbage collected; under load they pile up until PostgreSQL refuses new
clients. So the connections of a request are closed when it finishes. Long-lived threads (the
WebSocket consumers' executors, Celery worker threads) keep theirs for reuse.
"""

from __future__ import annotations

from typing import Any

from django.db import connections


def close_request_thread_connections(**_: Any) -> None:
    for connection in connections.all(initialized_only=True):
        # Inside an atomic block the connection is in use beyond this request (a test case wraps
        # the test client's requests in one transaction); leave it alone.
        if not connection.in_atomic_block:
            connection.close()
