"""The embedded default: one process serving HTTP and WebSockets with daphne, a Celery worker and
beat in threads consuming the in-process memory broker, and the in-memory channel layer.

Tasks still travel through Celery; they simply run on the worker thread instead of another process.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

from celery.beat import EmbeddedService
from celery.platforms import EX_OK
from celery.worker import WorkController
from celery.worker import state as worker_state
from django.conf import settings

from orket_site.celery import app as celery_app

logger = logging.getLogger("orket.embedded")


class EmbeddedWorker:
    """A Celery worker (solo pool) and beat scheduler running on daemon threads of this process."""

    def __init__(self, *, name: str = "embedded", beat: bool = True, loglevel: str | None = None) -> None:
        self.name = name
        self.with_beat = beat
        self.loglevel = loglevel or settings.ORKET_LOG_LEVEL
        self._controller: WorkController | None = None
        self._beat: EmbeddedService | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._controller = WorkController(
            app=celery_app,
            hostname=f"{self.name}@{socket.gethostname()}",
            pool_cls="solo",
            concurrency=1,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel=self.loglevel,
        )
        self._thread = threading.Thread(target=self._controller.start, name="orket-celery-worker", daemon=True)
        self._thread.start()
        if self.with_beat:
            self._beat = EmbeddedService(
                celery_app, thread=True, schedule_filename=str(settings.DATA_DIR / "celerybeat-schedule")
            )
            self._beat.start()
        logger.info("embedded Celery worker %s started (beat: %s)", self.name, self.with_beat)

    def stop(self, timeout: float = 10.0) -> None:
        if self._beat is not None:
            self._beat.stop()
        if self._thread is not None and self._thread.is_alive():
            self._stop_from_its_own_thread(timeout)
        elif self._controller is not None:
            self._controller.stop(in_sighandler=False)
        logger.info("embedded Celery worker stopped")

    def _stop_from_its_own_thread(self, timeout: float) -> None:
        # Closing the broker connection from this thread races the worker thread's read of the same
        # Redis socket (both wait for one BRPOP reply; the loser blocks forever). The worker's loop
        # checks this flag between polls and shuts itself down on its own thread instead.
        assert self._thread is not None
        worker_state.should_stop = EX_OK
        try:
            self._thread.join(timeout)
        finally:
            worker_state.should_stop = None
        if self._thread.is_alive():
            logger.warning("embedded worker did not stop within %.0f s", timeout)


# Daphne drops a WebSocket whose handshake takes longer than this. Its default of 5 s turns a burst
# of connections under load into a storm of retries that never get through; 30 s lets them queue.
WEBSOCKET_CONNECT_TIMEOUT = 30


def serve(host: str, port: int, *, on_ready: Callable[[], None] | None = None) -> None:
    """Serve the ASGI application with daphne until SIGINT or SIGTERM."""
    from daphne.server import Server  # imported late: it installs the asyncio Twisted reactor

    from orket_site.asgi import application

    interface = host.strip("[]").replace(":", "\\:")  # twisted endpoint syntax escapes colons
    endpoint = f"tcp:port={port}:interface={interface}"
    server = Server(
        application=application,
        endpoints=[endpoint],
        signal_handlers=True,
        verbosity=0,
        application_close_timeout=10,
        ready_callable=on_ready,
        websocket_timeout=86400,
        websocket_connect_timeout=WEBSOCKET_CONNECT_TIMEOUT,
    )
    server.run()
