"""Sandboxes without Docker: the app runs as a bounded local process. No Django imports.

With bubblewrap installed, the app runs through `sandboxes.local_backend.bwrap_argv` with the host's
network kept (it must serve on 127.0.0.1), the workspace read-only at /workspace, a private /tmp,
/proc and /dev, and (as root) uid 65534 without capabilities. Without bubblewrap it is a plain
subprocess in the workspace, as the user running Orket: no filesystem or network isolation at all,
which `describe()` says plainly.

Either way it runs under `prlimit` (address space, processes, open files, no core files) and
`timeout` (the sandbox's time to live), in a session of its own so that stopping it kills the whole
process group. Its process id, output and the isolation used live in the sandbox's state folder.
Unlike the verification runner, the process outlives the Celery task that started it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sandboxes.isolation import IsolatedCommand
from sandboxes.local_backend import bwrap_argv, find_bwrap, write_etc

PID_FILE = "app.pid"
LOG_FILE = "app.log"
NOFILE = 1024


@dataclass(frozen=True)
class LocalLimits:
    memory_mb: int = 1024
    max_processes: int = 256
    time_to_live_seconds: int = 24 * 3600


def describe(bwrap: str | None) -> str:
    """Plain words for people (at most 200 characters, the width of `Sandbox.isolation`)."""
    if bwrap is None:
        return (
            "plain subprocess: no filesystem or network isolation (no bubblewrap); runs as Orket's user "
            "with memory, process and time limits only"
        )
    who = "uid 65534, no capabilities" if os.geteuid() == 0 else f"uid {os.geteuid()} in a user namespace"
    return (
        f"bubblewrap: read-only workspace, private /tmp, {who}; the host's network (serves on 127.0.0.1); "
        "memory, process and time limits"
    )


def launch(
    *,
    state_dir: Path,
    workspace: Path,
    argv: list[str],
    workdir: str,
    env: dict[str, str],
    limits: LocalLimits,
    use_bwrap: bool | None = None,
) -> tuple[int, str]:
    """Start the app in the background; its process id and the isolation used, in plain words.

    `workdir` and every `/workspace` in `argv` and `env` are paths as the app sees them (the workspace
    mounted at /workspace); without bubblewrap they are rewritten to the real workspace."""
    state_dir.mkdir(parents=True, exist_ok=True)
    bwrap = find_bwrap() if use_bwrap is not False else None
    if bwrap is not None:
        command = IsolatedCommand(
            argv=tuple(argv), read_only={workspace: "/workspace"}, workdir=workdir, env=env, writable_tmp=True
        )
        etc = write_etc(state_dir / "etc")
        inner = bwrap_argv(command, bwrap=bwrap, etc_dir=etc, network=True)
        process_env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        cwd = "/"
    else:

        def real(text: str) -> str:
            return text.replace("/workspace", str(workspace))

        inner = [real(part) for part in argv]
        process_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **{k: real(v) for k, v in env.items()}}
        cwd = real(workdir)
    prlimit = shutil.which("prlimit")
    bounded: list[str] = ["timeout", "--kill-after=5", str(max(limits.time_to_live_seconds, 1))]
    if prlimit:
        bounded += [
            prlimit,
            f"--as={limits.memory_mb * 1024 * 1024}",
            f"--nproc={limits.max_processes}",
            f"--nofile={NOFILE}",
            "--core=0",
            "--",
        ]
    log_path = state_dir / LOG_FILE
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*bounded, *inner],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=process_env,
            start_new_session=True,
            close_fds=True,
        )
    (state_dir / PID_FILE).write_text(str(process.pid))
    return process.pid, describe(bwrap)


def pid_of(state_dir: Path) -> int | None:
    try:
        return int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def alive(state_dir: Path) -> bool:
    pid = pid_of(state_dir)
    if pid is None:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) not in ("Z", "X", "")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def stop(state_dir: Path, grace_seconds: float = 5.0) -> bool:
    """Stop the whole process group (TERM, then KILL); True when something was running."""
    pid = pid_of(state_dir)
    if pid is None:
        return False
    running = alive(state_dir)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and alive(state_dir):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)
    (state_dir / PID_FILE).unlink(missing_ok=True)
    return running


def log_tail(state_dir: Path, tail: int) -> str:
    path = state_dir / LOG_FILE
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 512 * 1024))
            data = handle.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-tail:]) + ("\n" if lines else "")
