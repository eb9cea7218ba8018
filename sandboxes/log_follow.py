"""Following a sandbox's service logs into its log stream while it runs (worker side).

One thread per sandbox in the worker process that started it (`sandbox_logs_follow`, called when a
start begins, by the periodic health check, and for every live sandbox when a worker starts). The
thread holds a lease on the stream (`follower`, `followed_until`), renewed every few seconds, so a
second worker's thread backs off while the first one lives and takes over when it died.

Where it has read to is stored with the lines it read (`LogStream.cursor`, compare-and-set through
`log_lines_append`), so a follower that restarts resumes there: the local backend's log file by byte
offset, each Docker container by the nanosecond timestamp of its last line. Nothing is stored twice,
and nothing written while no follower ran is lost (the file and Docker's log keep it).

It ends, after a last read, when the sandbox is stopped, deleted or failed; a deleted or failed
sandbox's stream is closed.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from sandboxes import local_sandbox
from sandboxes.errors import LogStreamClosed
from sandboxes.instance import instance_id, state_dir
from sandboxes.log_streams import log_lines_append, log_stream_close, log_stream_open, log_stream_reopen
from sandboxes.models import Backend, LogStream, LogStreamKind, Sandbox, SandboxStatus

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
LEASE_SECONDS = 15.0
RENEW_SECONDS = 5.0
MAX_READ_BYTES = 1024 * 1024
FOLLOWED = (SandboxStatus.CREATING, SandboxStatus.RUNNING, SandboxStatus.UNHEALTHY, SandboxStatus.STOPPING)
LOCAL_SOURCE = "app.log"

_threads: dict[int, threading.Thread] = {}
_stops: dict[int, threading.Event] = {}
_threads_lock = threading.Lock()


def sandbox_log_stream(sandbox: Sandbox) -> LogStream:
    """The sandbox's service log stream (one for its whole life), made when missing."""
    with transaction.atomic():
        found = LogStream.objects.filter(sandbox=sandbox, kind=LogStreamKind.SERVICE).order_by("id").first()
        if found is not None:
            return found
        return log_stream_open(
            project_id=sandbox.project_id,
            kind=LogStreamKind.SERVICE,
            label=f"sandbox {sandbox.name}",
            sandbox_id=sandbox.pk,
        )


def sandbox_logs_follow(*, sandbox_id: int) -> bool:
    """Follow the sandbox's logs on a thread of this process unless one already does; True when started."""
    with _threads_lock:
        running = _threads.get(sandbox_id)
        if running is not None and running.is_alive():
            return False
        stop = threading.Event()
        thread = threading.Thread(
            target=_follow_safely, args=(sandbox_id, stop), name=f"sandbox-logs-{sandbox_id}", daemon=True
        )
        _threads[sandbox_id], _stops[sandbox_id] = thread, stop
        thread.start()
    return True


def sandboxes_logs_unfollow(timeout: float = 10.0) -> None:
    """Stop every follower of this process and release their leases (a worker shutting down), so
    the next worker takes over at once from where they stopped."""
    with _threads_lock:
        running = list(_threads.items())
        for stop in _stops.values():
            stop.set()
    for _, thread in running:
        thread.join(timeout=timeout)


def sandboxes_logs_follow() -> int:
    """Follow every live sandbox's logs (a worker starting up); the count of threads started."""
    started = 0
    for sandbox_id in Sandbox.objects.filter(status__in=FOLLOWED).values_list("pk", flat=True):
        started += int(sandbox_logs_follow(sandbox_id=sandbox_id))
    return started


def sandbox_log_streams_close(*, sandbox_id: int) -> None:
    """Close the sandbox's service stream (it was deleted); a follower elsewhere ends on its own."""
    for stream_id in LogStream.objects.filter(sandbox_id=sandbox_id, closed_at__isnull=True).values_list(
        "pk", flat=True
    ):
        log_stream_close(stream_id=stream_id)


def following(sandbox_id: int) -> bool:
    thread = _threads.get(sandbox_id)
    return thread is not None and thread.is_alive()


def wait_until_stopped(sandbox_id: int, timeout: float = 10.0) -> None:
    thread = _threads.get(sandbox_id)
    if thread is not None:
        thread.join(timeout=timeout)


def _follow_safely(sandbox_id: int, stop: threading.Event) -> None:
    try:
        close_old_connections()
        _follow(sandbox_id, stop)
    except LogStreamClosed:
        log.info("the log stream of sandbox %s was closed before its follower's last read", sandbox_id)
    except Exception:  # the thread must end quietly; the next health check starts another
        log.exception("following the logs of sandbox %s failed", sandbox_id)
    finally:
        connection.close()


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:100]


def _claim(stream_id: int, holder: str) -> bool:
    """Take or renew the lease; False while another live follower holds it."""
    now = timezone.now()
    free = Q(follower="") | Q(follower=holder) | Q(followed_until__isnull=True) | Q(followed_until__lt=now)
    return (
        LogStream.objects.filter(free, pk=stream_id).update(
            follower=holder, followed_until=now + timedelta(seconds=LEASE_SECONDS)
        )
        == 1
    )


def _release(stream_id: int, holder: str) -> None:
    LogStream.objects.filter(pk=stream_id, follower=holder).update(follower="", followed_until=None)


def _follow(sandbox_id: int, stop: threading.Event) -> None:
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    stream = sandbox_log_stream(sandbox)
    holder = _holder()
    if not _claim(stream.pk, holder):
        return
    if stream.closed_at is not None and sandbox.status in FOLLOWED:
        log_stream_reopen(stream_id=stream.pk)
    reader: _Reader = (
        _LocalReader(sandbox, stream.pk) if sandbox.backend == Backend.LOCAL else _DockerReader(sandbox, stream.pk)
    )
    renewed = time.monotonic()
    try:
        while True:
            status = Sandbox.objects.filter(pk=sandbox_id).values_list("status", flat=True).first()
            ending = status not in FOLLOWED
            if not reader.read_once(final=ending):
                return  # another follower stored what this one read: it follows now
            if ending:
                if status in (SandboxStatus.DELETED, SandboxStatus.FAILED, None):
                    log_stream_close(stream_id=stream.pk)
                return
            if time.monotonic() - renewed > RENEW_SECONDS:
                if not _claim(stream.pk, holder):
                    return
                renewed = time.monotonic()
            if stop.wait(POLL_SECONDS):
                return
    finally:
        reader.stop()
        _release(stream.pk, holder)


class _Reader:
    def read_once(self, *, final: bool) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        return


class _LocalReader(_Reader):
    """The local backend's app.log, read from the stored byte offset to its last complete line."""

    def __init__(self, sandbox: Sandbox, stream_id: int) -> None:
        self.path = state_dir(sandbox) / local_sandbox.LOG_FILE
        self.stream_id = stream_id

    def read_once(self, *, final: bool) -> bool:
        stored = LogStream.objects.values_list("cursor", flat=True).get(pk=self.stream_id).get(LOCAL_SOURCE)
        offset = int(stored or 0)
        data = _read_from(self.path, offset)
        if data is None:
            return True
        if len(data) == 0 and offset > 0 and _size(self.path) < offset:
            # The file was started afresh: read it from its start.
            return (
                log_lines_append(stream_id=self.stream_id, lines=[], source=LOCAL_SOURCE, read_from=stored, read_to=0)
                is not None
            )
        end = data.rfind(b"\n") + 1
        if final or len(data) >= MAX_READ_BYTES:
            end = len(data)  # the last line without its newline, or a line longer than one read
        if end == 0:
            return True
        text = data[:end].decode("utf-8", errors="replace")
        lines = [("stdout", line) for line in text.replace("\r\n", "\n").split("\n")]
        if lines and lines[-1][1] == "":
            lines.pop()
        stored_to = log_lines_append(
            stream_id=self.stream_id, lines=lines, source=LOCAL_SOURCE, read_from=stored, read_to=offset + end
        )
        return stored_to is not None


def _read_from(path: Path, offset: int) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(MAX_READ_BYTES)
    except OSError:
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class _DockerReader(_Reader):
    """Each container's log stream (`container.logs(stream=True, follow=True, timestamps=True)`), on a
    thread per container, from the nanosecond timestamp stored for its service."""

    def __init__(self, sandbox: Sandbox, stream_id: int) -> None:
        self.sandbox_id = sandbox.pk
        self.stream_id = stream_id
        self.lines: queue.Queue[tuple[str, int, str, str]] = queue.Queue(maxsize=100_000)
        self.readers: dict[str, threading.Thread] = {}
        self.stopping = threading.Event()
        self.engine: Any = None
        self.last_look = 0.0

    def _look_for_containers(self) -> None:
        from sandboxes import docker_backend

        if time.monotonic() - self.last_look < 2.0:
            return
        self.last_look = time.monotonic()
        if self.engine is None:
            self.engine = docker_backend.client()
        cursor = LogStream.objects.values_list("cursor", flat=True).get(pk=self.stream_id)
        for container in docker_backend.containers_of(self.engine, self.sandbox_id, instance_id()):
            service = container.labels.get("com.docker.compose.service", container.name)
            running = self.readers.get(service)
            if running is not None and running.is_alive():
                continue
            since_ns = int(cursor.get(f"docker:{service}") or 0)
            thread = threading.Thread(
                target=self._read_container,
                args=(container, service, since_ns),
                daemon=True,
                name=f"docker-logs-{service}",
            )
            self.readers[service] = thread
            thread.start()

    def _read_container(self, container: Any, service: str, since_ns: int) -> None:
        since = since_ns / 1e9 if since_ns else None
        try:
            chunks = container.logs(stream=True, follow=True, timestamps=True, stdout=True, stderr=True, since=since)
            for line in _docker_lines(chunks):
                if self.stopping.is_set():
                    return
                stamp, _, text = line.partition(" ")
                nanos = _nanoseconds(stamp)
                if nanos is None or nanos <= since_ns:
                    continue
                self.lines.put((service, nanos, "stdout", text))
        except Exception as error:  # a container that went away ends its reader; the next look starts another
            log.info("docker logs of sandbox %s/%s ended: %s", self.sandbox_id, service, error)

    def read_once(self, *, final: bool) -> bool:
        self._look_for_containers()
        if final:
            time.sleep(0.5)  # the last lines of a stopping container
        batch: dict[str, list[tuple[int, str, str]]] = {}
        while True:
            try:
                service, nanos, channel, text = self.lines.get_nowait()
            except queue.Empty:
                break
            batch.setdefault(service, []).append((nanos, channel, text))
        if not batch:
            return True
        cursor = LogStream.objects.values_list("cursor", flat=True).get(pk=self.stream_id)
        several = len(self.readers) > 1
        for service, items in batch.items():
            source = f"docker:{service}"
            stored = cursor.get(source)
            fresh = [item for item in items if item[0] > int(stored or 0)]
            if not fresh:
                continue
            lines = [(channel, f"{service} | {text}" if several else text) for _, channel, text in fresh]
            if (
                log_lines_append(
                    stream_id=self.stream_id, lines=lines, source=source, read_from=stored, read_to=fresh[-1][0]
                )
                is None
            ):
                return False
        return True

    def stop(self) -> None:
        self.stopping.set()
        if self.engine is not None:
            self.engine.close()


def _docker_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Whole lines out of Docker's log chunks (a chunk may hold several lines or part of one)."""
    held = b""
    for chunk in chunks:
        held += chunk
        *complete, held = held.split(b"\n")
        for raw in complete:
            yield raw.decode("utf-8", errors="replace").rstrip("\r")
    if held:
        yield held.decode("utf-8", errors="replace")


def _nanoseconds(stamp: str) -> int | None:
    """Docker's RFC 3339 timestamp with up to nine fraction digits (trailing zeros dropped) in ns."""
    try:
        whole, _, rest = stamp.partition(".")
        fraction = rest.rstrip("Z").split("+")[0].split("-")[0] if rest else ""
        seconds = datetime.strptime(whole.rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
        return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)
    except ValueError:
        return None
