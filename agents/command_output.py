"""The live output of an agent's run_command / run_tests call: a log stream of the project, written
as the command prints and readable over /ws/logs/<id>/ while it runs (see sandboxes.log_streams)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sandboxes.log_streams import LogWriter, log_stream_close, log_stream_open

COMMAND_TOOLS = frozenset({"run_command", "run_tests"})
LABEL_MAX = 200


def command_label(tool: str, arguments: dict[str, Any]) -> str:
    if tool == "run_command":
        argv = arguments.get("argv")
        shown = " ".join(str(part) for part in argv) if isinstance(argv, list) else ""
        return f"run_command: {shown}"[:LABEL_MAX]
    narrowed = " ".join(str(part) for part in [arguments.get("path") or "", *(arguments.get("args") or [])] if part)
    return f"run_tests {narrowed}".strip()[:LABEL_MAX]


@contextmanager
def command_output_stream(
    *, project_id: int, tool: str, arguments: dict[str, Any], refs: dict[str, Any]
) -> Iterator[tuple[int, LogWriter]]:
    """Open a command stream (outside any transaction: the writer stores on its own connection),
    yield its id and the writer to pass as `on_output`, and store the rest and close it afterwards,
    whatever the command did."""
    stream = log_stream_open(project_id=project_id, kind="command", label=command_label(tool, arguments), refs=refs)
    writer = LogWriter(stream.pk)
    try:
        yield stream.pk, writer
    finally:
        writer.close()
        log_stream_close(stream_id=stream.pk)
