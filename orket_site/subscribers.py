"""The WebSocket stream consumers (run, board, logs) connected to this process.

Kept apart from orket_site.metrics, which reads agents' tables, so that the consumers of every app can
count themselves without importing that app's models.
"""

from __future__ import annotations

import threading
from collections import Counter

STREAMS = ("run", "board", "logs")

_lock = threading.Lock()
_open: dict[str, str] = {}


def websocket_opened(stream: str, channel_name: str) -> None:
    """A stream consumer (`run`, `board` or `logs`) accepted a client on `channel_name`."""
    with _lock:
        _open[channel_name] = stream


def websocket_closed(channel_name: str) -> None:
    """The consumer on `channel_name` disconnected; a no-op when it never counted as opened."""
    with _lock:
        _open.pop(channel_name, None)


def websocket_subscribers() -> dict[str, int]:
    with _lock:
        counts = Counter(_open.values())
    return {stream: counts.get(stream, 0) for stream in sorted(set(STREAMS) | set(counts))}
