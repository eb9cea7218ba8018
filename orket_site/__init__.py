"""Orket's project package: settings, URLs, ASGI, the Celery application and the error root.

The Celery application is loaded on first use (and by AgentsConfig.ready in every Django process),
not on import of this package, so that modules which only need `orket_site.errors` (the Gitea client,
the pure rule modules) import without Django.
"""

from __future__ import annotations

from typing import Any

__all__ = ["celery_app"]


def __getattr__(name: str) -> Any:
    if name == "celery_app":
        from orket_site.celery import app

        return app
    raise AttributeError(f"module 'orket_site' has no attribute {name!r}")
