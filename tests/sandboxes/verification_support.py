"""Helpers for the verification and local-backend tests: which backends exist here, and leftovers on the host."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.services import missing_service

RUNNER_MARK = "verify_runner.py"


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
