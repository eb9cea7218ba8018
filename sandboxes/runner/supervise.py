"""Start one command under resource limits, kill everything it started when it ends or runs out of time.

Run by `sandboxes.local_backend` as its own process (standard library only, no Django), with one JSON
argument:

    {"argv": [...], "env": {...}, "cwd": "...", "rlimits": {"RLIMIT_AS": n, ...},
     "uid": 65534 | null, "gid": 65534 | null, "timeout": seconds, "status_fd": n}

It becomes a child subreaper (so every process the command starts, even one that calls setsid() or
double-forks, is re-parented to it), forks, and the child applies the limits, drops to `uid`/`gid`
when given, and execs the command. When the command exits, or the timeout passes, every remaining
descendant is killed with SIGKILL and reaped. The outcome goes to `status_fd` as one JSON object:
{"exit_code": int | null, "signal": int | null, "timed_out": bool, "error": str}, after a first line
{"child": pid} (the command's process group, for the worker's last-resort kill). The command's
own stdout and stderr are this process's.

This process is single-threaded, so applying limits between fork and exec is safe (unlike a
`preexec_fn` in a threaded Celery worker).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(option, value, 0, 0, 0)


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (of all its threads), from /proc."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(part) for part in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    queue = [pid]
    while queue and len(found) < 100_000:
        for child in _children(queue.pop()):
            found.append(child)
            queue.append(child)
    return found


def _reap() -> bool:
    """Reap every exited child; False when there are no children left at all."""
    try:
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return True
    except ChildProcessError:
        return False


def _kill_descendants(group: int) -> None:
    """SIGKILL the command's process group and every descendant (those that left the group are re-parented
    to us as they orphan), breadth first in each pass so a fork bomb cannot outrun it, and reap them."""
    me = os.getpid()
    for _ in range(100_000):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        found = _descendants(me)
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not _reap() and not found:
            return
        if not found:
            time.sleep(0.002)


def _resolve(program: str, env: dict[str, str]) -> str:
    if "/" in program:
        return program
    for folder in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":"):
        candidate = os.path.join(folder, program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return program


def _child(config: dict) -> None:
    try:
        os.setpgid(0, 0)  # a group of its own, so it can be killed at once without killing us
        os.chdir(config["cwd"])
        for name, value in config.get("rlimits", {}).items():
            limit = int(value)
            resource.setrlimit(getattr(resource, name), (limit, limit))
        uid, gid = config.get("uid"), config.get("gid")
        if gid is not None:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
        if uid is not None:
            os.setresuid(uid, uid, uid)
        env = {str(k): str(v) for k, v in config.get("env", {}).items()}
        argv = [str(part) for part in config["argv"]]
        os.execve(_resolve(argv[0], env), argv, env)  # noqa: S606 - the command is an argv, never a shell line
    except OSError as error:
        os.write(2, f"orket: could not start {config['argv'][0]!r}: {error}\n".encode())
    os._exit(127)


def main() -> int:
    config = json.loads(sys.argv[1])
    status_fd = int(config["status_fd"])
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the worker died: so do we (the worker's side kills the group)
    deadline = time.monotonic() + float(config["timeout"])
    stop_requested = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.append(signum))
    pid = os.fork()
    if pid == 0:
        os.close(status_fd)
        _child(config)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)  # also here, so the group exists before either side acts on it
    os.write(status_fd, (json.dumps({"child": pid}) + "\n").encode())
    outcome: dict = {"exit_code": None, "signal": None, "timed_out": False, "error": ""}
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                if os.WIFEXITED(status):
                    outcome["exit_code"] = os.WEXITSTATUS(status)
                elif os.WIFSIGNALED(status):
                    outcome["signal"] = os.WTERMSIG(status)
                break
            if stop_requested or time.monotonic() >= deadline:
                outcome["timed_out"] = True
                outcome["error"] = "stopped from outside" if stop_requested else ""
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        _kill_descendants(pid)
    os.write(status_fd, (json.dumps(outcome) + "\n").encode())
    os.close(status_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
