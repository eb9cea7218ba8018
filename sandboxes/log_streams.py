"""Log streams: output that reaches browsers while it is produced, with the run events' guarantees.

    stream = log_stream_open(project_id=p, kind="command", label="pytest -q", refs={"card": 7})
    writer = LogWriter(stream.pk)          # the on_output(channel, text) callback of a command runner
    runner.run(command, on_output=writer)  # called from reader threads, many times, cheaply
    writer.close()                         # flushes what is left
    log_stream_close(stream_id=stream.pk)

Every line gets the next sequence number of its stream (1, 2, 3...) in the transaction that stores
it: the stream row's `last_seq` is bumped first, which takes the row's write lock (PostgreSQL) or the
database's (SQLite, IMMEDIATE transactions), so concurrent writers never share or skip a number. The
lines are published to the channel layer after commit; the socket (sandboxes.consumers) reads the
database for anything the layer dropped, so the layer is only the fast path.

Retention: a stream keeps its last ORKET_LOG_STREAM_MAX_LINES lines (default 20,000); a line longer than
ORKET_LOG_LINE_MAX_CHARS characters (default 4,000) is cut with a marker. Older lines are deleted
as new ones come; `trimmed_through` says up to where.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from boards.errors import InvalidInput, NotFound
from boards.models import Project
from sandboxes.errors import LogStreamClosed
from sandboxes.models import LogChannel, LogLine, LogStream, LogStreamKind

log = logging.getLogger(__name__)

CUT_MARKER = " [orket: line cut]"
MAX_LABEL = 200


def max_lines() -> int:
    return int(settings.ORKET_LOG_STREAM_MAX_LINES)


def max_line_chars() -> int:
    return int(settings.ORKET_LOG_LINE_MAX_CHARS)


def stream_group(stream_id: int) -> str:
    return f"logs_{stream_id}"


def line_frame(line: LogLine) -> dict[str, Any]:
    return {"seq": line.seq, "channel": line.channel, "text": line.text, "at": line.created_at.isoformat()}


def split_lines(text: str) -> list[str]:
    """The lines of `text`; a final newline ends the last line rather than starting an empty one."""
    if not text:
        return []
    parts = text.replace("\r\n", "\n").split("\n")
    return parts[:-1] if parts[-1] == "" else parts


def _clean(text: str) -> str:
    text = text.replace("\x00", "\ufffd")  # PostgreSQL stores no NUL in text
    limit = max_line_chars()
    return text if len(text) <= limit else text[: limit - len(CUT_MARKER)] + CUT_MARKER


# -- writes ------------------------------------------------------------------------------------------------------


def log_stream_open(
    *,
    project_id: int,
    kind: str,
    label: str,
    sandbox_id: int | None = None,
    verification_run_id: int | None = None,
    refs: dict[str, Any] | None = None,
) -> LogStream:
    """A new, open, empty stream of one project."""
    if kind not in LogStreamKind.values:
        raise InvalidInput(f"kind must be one of {', '.join(LogStreamKind.values)}, not {kind!r}.")
    label = label.strip()[:MAX_LABEL] or kind
    if not Project.objects.filter(pk=project_id).exists():
        raise NotFound("Project not found.")
    stream = LogStream.objects.create(
        project_id=project_id,
        kind=kind,
        label=label,
        sandbox_id=sandbox_id,
        verification_run_id=verification_run_id,
        refs=refs or {},
    )
    log.info("log stream opened", extra={"stream": stream.pk, "project": project_id, "kind": kind})
    return stream


def log_append(*, stream_id: int, channel: str, text: str) -> int:
    """Store `text` as lines of `channel` (stdout or stderr) with the next sequence numbers; the last
    number given (the stream's last one when `text` holds no line). Safe from any thread."""
    return log_lines_append(stream_id=stream_id, lines=[(channel, line) for line in split_lines(text)]) or 0


def log_lines_append(
    *,
    stream_id: int,
    lines: Iterable[tuple[str, str]],
    source: str | None = None,
    read_from: Any = None,
    read_to: Any = None,
) -> int | None:
    """Append (channel, text) lines in one transaction; the last sequence number.

    With `source`, the lines were read from a producer (a log file, a container) from position
    `read_from` to `read_to`: they are stored only when the stream's cursor for that source still says
    `read_from`, and the cursor moves to `read_to` with them. None means another reader got there
    first (nothing was stored), so a follower that restarts, or a second one, never stores a line twice.
    """
    items = [(channel, _clean(text)) for channel, text in lines]
    for channel, _ in items:
        if channel not in LogChannel.values:
            raise InvalidInput(f"channel must be stdout or stderr, not {channel!r}.")
    with transaction.atomic():
        if source is None and not items:
            return LogStream.objects.filter(pk=stream_id).values_list("last_seq", flat=True).first() or 0
        updated = LogStream.objects.filter(pk=stream_id, closed_at__isnull=True).update(
            last_seq=F("last_seq") + len(items)
        )
        if not updated:
            if LogStream.objects.filter(pk=stream_id).exists():
                raise LogStreamClosed("The log stream is closed.")
            raise NotFound("Log stream not found.")
        stream = LogStream.objects.only("last_seq", "trimmed_through", "cursor").get(pk=stream_id)
        if source is not None:
            if stream.cursor.get(source) != read_from:
                transaction.set_rollback(True)
                return None
            LogStream.objects.filter(pk=stream_id).update(cursor={**stream.cursor, source: read_to})
        first = stream.last_seq - len(items) + 1
        created = LogLine.objects.bulk_create(
            [
                LogLine(stream_id=stream_id, seq=first + offset, channel=channel, text=text)
                for offset, (channel, text) in enumerate(items)
            ]
        )
        _trim(stream)
        frames = [line_frame(line) for line in created]
        if frames:
            transaction.on_commit(lambda: _publish(stream_id, frames))
    return stream.last_seq


def _trim(stream: LogStream) -> None:
    """Keep the last `max_lines()` lines; deletes in steps of a tenth, not at every line."""
    keep = max_lines()
    if stream.last_seq - stream.trimmed_through <= keep + keep // 10:
        return
    through = stream.last_seq - keep
    LogLine.objects.filter(stream_id=stream.pk, seq__lte=through).delete()
    LogStream.objects.filter(pk=stream.pk).update(trimmed_through=through)


def log_stream_close(*, stream_id: int) -> LogStream:
    """Mark the stream finished (idempotent); subscribers hear it after commit."""
    with transaction.atomic():
        LogStream.objects.filter(pk=stream_id, closed_at__isnull=True).update(closed_at=timezone.now())
        stream = LogStream.objects.filter(pk=stream_id).first()
        if stream is None:
            raise NotFound("Log stream not found.")
        last_seq = stream.last_seq
        transaction.on_commit(lambda: _publish_closed(stream_id, last_seq))
    log.info("log stream closed", extra={"stream": stream_id, "lines": last_seq})
    return stream


def log_stream_reopen(*, stream_id: int) -> None:
    """Open a closed stream again (a stopped sandbox started again keeps one stream)."""
    LogStream.objects.filter(pk=stream_id).update(closed_at=None)


# -- publishing ----------------------------------------------------------------------------------------------------


def _send(group: str, messages: list[dict[str, Any]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all() -> None:
        for message in messages:
            await layer.group_send(group, message)

    try:
        async_to_sync(send_all)()
    except Exception:  # the layer is the fast path: the sockets catch up from the database
        log.warning("could not publish to %s", group, exc_info=True)


PUBLISH_BATCH_CHARS = 200_000


def _publish(stream_id: int, frames: list[dict[str, Any]]) -> None:
    """Consecutive lines go out as few layer messages as fit (each encoded once, not per subscriber):
    a group send costs far more than its size, on Redis above all."""
    messages: list[dict[str, Any]] = []
    texts: list[str] = []
    size = 0
    for frame in frames:
        text = json.dumps(frame)
        if texts and size + len(text) > PUBLISH_BATCH_CHARS:
            messages.append(_lines_message(frame["seq"] - len(texts), texts))
            texts, size = [], 0
        texts.append(text)
        size += len(text)
    if texts:
        messages.append(_lines_message(frames[-1]["seq"] - len(texts) + 1, texts))
    _send(stream_group(stream_id), messages)


def _lines_message(first_seq: int, texts: list[str]) -> dict[str, Any]:
    return {"type": "log.lines", "first": first_seq, "texts": texts}


def _publish_closed(stream_id: int, last_seq: int) -> None:
    _send(stream_group(stream_id), [{"type": "log.closed", "last_seq": last_seq}])


# -- the batching writer ------------------------------------------------------------------------------------------


class LogWriter:
    """An `on_output(channel, text)` callback that batches writes to one stream.

    Calling it only appends to a buffer under a lock (any thread, as often as output comes); a
    thread of its own stores complete lines every `flush_seconds`, and a line without its newline
    once it is `partial_seconds` old. Past `max_pending_chars` waiting, output is dropped and a
    marker line says how much. `close()` stores everything left; it does not close the stream.
    The writer stores on its own database connection: open the stream outside any transaction of
    the caller (or after it committed), or the writer cannot see it.
    """

    def __init__(
        self,
        stream_id: int,
        *,
        flush_seconds: float = 0.1,
        partial_seconds: float = 0.5,
        max_pending_chars: int = 8_000_000,
    ) -> None:
        self.stream_id = stream_id
        self.flush_seconds, self.partial_seconds = flush_seconds, partial_seconds
        self.max_pending_chars = max_pending_chars
        self._lock = threading.Condition()
        self._store_lock = threading.Lock()  # one batch at a time, in the order they were taken
        self._lines: list[tuple[str, str]] = []
        self._partial: dict[str, tuple[str, float]] = {}
        self._pending_chars = 0
        self._dropped = 0
        self._closing = False
        self.failed = False
        self._thread = threading.Thread(target=self._run, name=f"log-writer-{stream_id}", daemon=True)
        self._thread.start()

    def __call__(self, channel: str, text: str) -> None:
        if channel not in LogChannel.values:
            channel = LogChannel.STDOUT
        with self._lock:
            if self._pending_chars + len(text) > self.max_pending_chars:
                self._dropped += len(text)
                return
            self._pending_chars += len(text)
            held, since = self._partial.pop(channel, ("", time.monotonic()))
            pieces = (held + text).replace("\r\n", "\n").split("\n")
            self._lines.extend((channel, piece) for piece in pieces[:-1])
            if pieces[-1]:
                self._partial[channel] = (pieces[-1], since if held else time.monotonic())
            if self._lines:
                self._lock.notify()

    def _take(self, *, everything: bool) -> list[tuple[str, str]]:
        now = time.monotonic()
        taken, self._lines = self._lines, []
        for channel, (text, since) in list(self._partial.items()):
            if everything or now - since >= self.partial_seconds:
                taken.append((channel, text))
                del self._partial[channel]
        if self._dropped:
            taken.append((LogChannel.STDERR, f"[orket: {self._dropped} characters of output dropped: too fast]"))
            self._dropped = 0
        self._pending_chars = sum(len(text) for _, text in self._lines) + sum(
            len(text) for text, _ in self._partial.values()
        )
        return taken

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    self._lock.wait(timeout=self.flush_seconds)
                    closing = self._closing
                self._drain(everything=closing)
                if closing:
                    return
                # A burst keeps the writer busy; a short pause lets lines gather into one transaction.
                time.sleep(self.flush_seconds / 4)
        finally:
            connection.close()

    def _drain(self, *, everything: bool) -> None:
        with self._store_lock:
            with self._lock:
                batch = self._take(everything=everything)
            if batch:
                self._store(batch)

    def _store(self, batch: list[tuple[str, str]]) -> None:
        try:
            close_old_connections()
            log_lines_append(stream_id=self.stream_id, lines=batch)
        except LogStreamClosed:
            log.warning("log stream %s was closed with %s lines still to write", self.stream_id, len(batch))
        except Exception:  # the command goes on; its output is also kept whole by the runner
            self.failed = True
            log.exception("could not store %s lines of log stream %s", len(batch), self.stream_id)

    def flush(self) -> None:
        """Store what is buffered now (complete lines and partial ones), from the calling thread."""
        self._drain(everything=True)

    def close(self, timeout: float = 30.0) -> None:
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join(timeout=timeout)

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
