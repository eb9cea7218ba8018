"""Start one command under resource limits, kill everything it started when it ends or runs out of time.

Run by `sandboxes.local_backend` as its own process (standard library only, no Django), with one JSON
argument:

    {"argv": [...], "env": {...}, "cwd": "...", "rlimits": {"RLIMIT_AS": n, ...},
     "uid": 65534 | null, "gid": 65534 | null, "timeout": seconds, "status_fd": n}

It becomes a child subreaper (so every process the command starts, even one that calls setsid() or
double-forks, is re-parented to it), forks, and the child applies the limits, drops to `uid`/`gid`
when given, and execs the command. When the command exits, or the timeout passes, every remaining
descendant is killed with SIGKILL and reaped. The outcome goes to `status_fd` as one JSON object:
{"exit_code": int | null, "signal": int | null, "timed_out": bool, "error": str}. The command's
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
    """Direct children of `pid`, from /proc."""
    found: list[int] = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            found = [int(part) for part in handle.read().split()]
        return found
    except OSError:
        pass
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(name))
    return found


def _kill_descendants() -> None:
    """SIGKILL every descendant (they are all re-parented to us as they orphan) and reap them."""
    me = os.getpid()
    for _ in range(10_000):
        children = _children(me)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        try:
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
        except ChildProcessError:
            if not _children(me):
                return
        if not children:
            time.sleep(0.005)


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
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the worker died: so do we, and our descendants with the group kill
    deadline = time.monotonic() + float(config["timeout"])
    pid = os.fork()
    if pid == 0:
        os.close(status_fd)
        _child(config)
    outcome: dict = {"exit_code": None, "signal": None, "timed_out": False, "error": ""}

    def stop(signum: int, frame: object) -> None:
        raise TimeoutError

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                if os.WIFEXITED(status):
                    outcome["exit_code"] = os.WEXITSTATUS(status)
                elif os.WIFSIGNALED(status):
                    outcome["signal"] = os.WTERMSIG(status)
                break
            if time.monotonic() >= deadline:
                outcome["timed_out"] = True
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    except TimeoutError:
        outcome["timed_out"] = True
        outcome["error"] = "stopped from outside"
    finally:
        _kill_descendants()
    with os.fdopen(status_fd, "w") as handle:
        handle.write(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())
