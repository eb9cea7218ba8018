"""Helpers for the verification and local-backend tests: which backends exist here, and leftovers on the host."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.services import missing_service


def require_bwrap() -> None:
    if shutil.which("bwrap") is None:
        missing_service("bubblewrap (bwrap) is not installed")


def processes_matching(text: str) -> list[tuple[int, str]]:
    """Processes on the host whose command line contains `text` (the test's own process excluded)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append((int(name), cmdline))
    return found


def assert_no_leftovers(text: str, wait: float = 5.0) -> None:
    """No process whose command line contains `text` is left (zombies being reaped get `wait` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        left = [(pid, cmd) for pid, cmd in processes_matching(text) if not _zombie(pid)]
        if not left:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"processes left behind: {left[:5]} ({len(left)} in all)")
        time.sleep(0.1)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")} if folder.exists() else set()


class Listener:
    """A TCP port on the host that counts the connections it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()
