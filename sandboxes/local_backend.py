"""The local-process isolation backend, for machines without a Docker engine (the embedded default).

With bubblewrap (`bwrap`) installed, a command runs in new namespaces: no network (a network
namespace with only a loopback device), its own PIDs, IPC and host name; it sees only read-only
binds of the paths it is given plus the read-only system folders it needs to run (/usr, /lib*,
/bin, a few files of /etc), a private /proc and /dev, and a private, size-capped /tmp. There is no
host home and no Orket data folder. When Orket runs as root, bubblewrap mounts as root and the
command drops to uid/gid 65534 (nobody) with every capability gone and no_new_privs set, through
`setpriv`; as another user, bubblewrap runs unprivileged in a user namespace.

Without bubblewrap, the command is a plain subprocess: same limits and timeout, an empty
environment, a fresh temporary working folder with copies of the read-only inputs, and (as root)
uid 65534. It has the host's network and can read what that user can read: `describe()` and every
result say so plainly.

In both cases `sandboxes/runner/supervise.py` starts the command: it applies the resource limits
(address space, processes, CPU seconds, file size, open files, no core files) between fork and exec,
enforces the wall-clock timeout, and kills every descendant, even ones that escaped the process
group, when the command ends. Output is capped; with an `on_output` callback it is handed on as the
pipes are read. `command.writable` folders are bound read-write (bubblewrap) or used in place (plain).

`bwrap_argv()` builds the bubblewrap command line for a command; the Docker-less sandbox lifecycle
may reuse it (with `network=True` and writable binds) to launch a long-running app, wrapped in
`supervisor_argv()` for the same limits. Pure standard library: no Django.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from sandboxes.isolation import IsolatedCommand, IsolatedResult, Limits, OutputCallback

NOBODY = 65534
SUPERVISOR = Path(__file__).resolve().parent / "runner" / "supervise.py"
SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "alternatives",
    "nsswitch.conf",
    "mime.types",
)
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
SANDBOX_TMP = "/tmp"  # noqa: S108 - a private tmpfs inside the sandbox, not the host's /tmp
TMP_SIZE_BYTES = 64 * 1024 * 1024
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_OPEN_FILES = 256
MAX_COPY_BYTES = 200 * 1024 * 1024
COPY_SKIP = frozenset({".git", "node_modules", "__pycache__", ".venv", "venv"})
KILL_GRACE_SECONDS = 10.0

PLAIN_ISOLATION = (
    "plain subprocess: no filesystem or network isolation (bubblewrap is not installed or turned off); "
    "resource limits, a timeout, an empty environment and a fresh working folder only"
)


def find_bwrap() -> str | None:
    """The bubblewrap binary, unless ORKET_BWRAP=0 turns it off (then the plain subprocess is used)."""
    if os.environ.get("ORKET_BWRAP", "").strip().lower() in {"0", "false", "no", "off"}:
        return None
    return shutil.which("bwrap")


def rlimits_for(limits: Limits) -> dict[str, int]:
    """The setrlimit values for `limits`. RLIMIT_NPROC counts every process of the user, so it is the
    processes that user already has plus the allowance."""
    uid = NOBODY if os.geteuid() == 0 else os.geteuid()
    return {
        "RLIMIT_AS": limits.memory_mb * 1024 * 1024,
        "RLIMIT_NPROC": _processes_of(uid) + limits.max_processes,
        "RLIMIT_CPU": math.ceil(limits.timeout_seconds * max(limits.cpus, 1.0)) + 1,
        "RLIMIT_FSIZE": MAX_FILE_BYTES,
        "RLIMIT_NOFILE": MAX_OPEN_FILES,
        "RLIMIT_CORE": 0,
    }


def _processes_of(uid: int) -> int:
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def bwrap_argv(
    command: IsolatedCommand,
    *,
    bwrap: str = "bwrap",
    etc_dir: Path | None = None,
    network: bool = False,
    writable: Mapping[Path, str] | None = None,
) -> list[str]:
    """The bubblewrap command line that runs `command.argv` in isolation.

    `etc_dir` holds a generated passwd and group (see `write_etc`). `network=True` keeps the host's
    network (for an app that must serve on 127.0.0.1); `writable` adds read-write binds (an app's data
    folder). Verification never uses either.
    """
    root = os.geteuid() == 0
    argv = [bwrap]
    if root:
        # No user namespace: bubblewrap mounts as root, then setpriv drops to the real uid 65534.
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
        if not network:
            argv.append("--unshare-net")
        argv += ["--cap-drop", "ALL"] if not _setpriv() else []
    else:
        argv += ["--unshare-all"] + (["--share-net"] if network else [])
    argv += ["--die-with-parent", "--new-session", "--hostname", "orket-sandbox", "--clearenv"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), f"/{name}"]
    for name in ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    if etc_dir is not None:
        argv += ["--ro-bind", str(etc_dir / "passwd"), "/etc/passwd", "--ro-bind", str(etc_dir / "group"), "/etc/group"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    if command.writable_tmp:
        argv += ["--perms", "1777", "--size", str(TMP_SIZE_BYTES), "--tmpfs", SANDBOX_TMP]
    binds = [(host, target, "--ro-bind") for host, target in command.read_only.items()]
    binds += [(host, target, "--bind") for host, target in (writable or {}).items()]
    made: set[str] = set()
    for host, target, kind in sorted(binds, key=lambda item: item[1]):
        if str(host) == target and _under_system(target):
            continue
        # Folders bubblewrap makes on the way are 0700 when it runs as root: make them readable first.
        for parent in reversed(Path(target).parents):
            name = str(parent)
            if name != "/" and name not in made and not _under_system(name):
                argv += ["--perms", "0755", "--dir", name]
                made.add(name)
        argv += [kind, str(host), target]
    if command.workdir not in ("/", SANDBOX_TMP) and not any(
        command.workdir == target or command.workdir.startswith(target.rstrip("/") + "/")
        for target in [*command.read_only.values(), *(writable or {}).values()]
    ):
        argv += ["--dir", command.workdir]
    argv += ["--chdir", command.workdir]
    for key, value in sorted(sandbox_env(command).items()):
        argv += ["--setenv", key, value]
    argv.append("--")
    if root and _setpriv():
        argv += [
            _setpriv() or "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ]
    argv += list(command.argv)
    return argv


def _setpriv() -> str | None:
    return shutil.which("setpriv", path="/usr/bin:/bin")


def _under_system(path: str) -> bool:
    return path == "/usr" or path.startswith("/usr/")


def sandbox_env(command: IsolatedCommand, *, home: str = SANDBOX_TMP) -> dict[str, str]:
    """The whole environment the command gets: nothing of Orket's, only these and `command.env`."""
    env = {
        "PATH": SANDBOX_PATH,
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(command.env)
    return env


def write_etc(folder: Path) -> Path:
    """A passwd and group naming only root and nobody, bound over /etc in the sandbox."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "passwd").write_text(
        f"root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:{NOBODY}:{NOBODY}:nobody:/tmp:/usr/sbin/nologin\n"
    )
    (folder / "group").write_text(f"root:x:0:\nnogroup:x:{NOBODY}:\n")
    for name in ("passwd", "group"):
        (folder / name).chmod(0o644)
    folder.chmod(0o755)
    return folder


def supervisor_argv(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    rlimits: Mapping[str, int],
    timeout: float,
    status_fd: int,
    uid: int | None = None,
    gid: int | None = None,
) -> list[str]:
    config = {
        "argv": list(argv),
        "env": dict(env),
        "cwd": cwd,
        "rlimits": dict(rlimits),
        "uid": uid,
        "gid": gid,
        "timeout": timeout,
        "status_fd": status_fd,
    }
    return [sys.executable, "-I", str(SUPERVISOR), json.dumps(config)]


class _Capped:
    """Reads a stream to its end on a thread, keeping at most `limit` bytes. With `on_chunk`, each piece
    is also handed on as soon as it is read (what was kept only: past the cap nothing more is sent)."""

    def __init__(self, stream: IO[bytes], limit: int, on_chunk: Callable[[str], None] | None = None) -> None:
        self.stream, self.limit, self.on_chunk = stream, limit, on_chunk
        self.data = bytearray()
        self.truncated = False
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        # read1 returns what the pipe holds now instead of waiting for a full buffer: output flows live.
        read = getattr(self.stream, "read1", self.stream.read)
        while True:
            chunk = read(65536)
            if not chunk:
                self._hand_on(b"", final=True)
                return
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
                self._hand_on(chunk[:room])
            if len(chunk) > room:
                self.truncated = True

    def _hand_on(self, chunk: bytes, *, final: bool = False) -> None:
        if self.on_chunk is None:
            return
        text = self.decoder.decode(chunk, final=final)
        if text:
            try:
                self.on_chunk(text)
            except Exception:  # a listener that fails must not stop the reading (the pipe would fill)
                logging.getLogger(__name__).exception("output callback failed")
                self.on_chunk = None

    def text(self) -> str:
        self.thread.join(timeout=5)
        return self.data.decode("utf-8", errors="replace")


class LocalProcessRunner:
    """IsolatedRunner on this machine: bubblewrap when installed, else a plain subprocess."""

    name = "local"

    def __init__(self, *, use_bwrap: bool | None = None) -> None:
        found = find_bwrap()
        self.bwrap = found if use_bwrap is not False else None
        if use_bwrap and not found:
            raise RuntimeError("bubblewrap (bwrap) is not installed")

    def available(self) -> bool:
        return True

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    def describe(self) -> str:
        if self.bwrap is None:
            return PLAIN_ISOLATION
        who = "uid 65534, no capabilities" if os.geteuid() == 0 else f"uid {os.geteuid()} in a user namespace"
        if os.geteuid() == 0 and not _setpriv():
            who = "root without capabilities (setpriv is missing)"
        return (
            f"bubblewrap: no network, read-only workspace, private /tmp, /proc and /dev, {who}; "
            "memory, process, CPU and file-size limits and a timeout (no cgroups)"
        )

    def run(self, command: IsolatedCommand, on_output: OutputCallback | None = None) -> IsolatedResult:
        with tempfile.TemporaryDirectory(prefix="orket-iso-") as scratch:
            base = Path(scratch)
            base.chmod(0o755)
            if self.bwrap is not None:
                argv = bwrap_argv(command, bwrap=self.bwrap, etc_dir=write_etc(base / "etc"), writable=command.writable)
                return self._supervise(
                    command, argv, env={"PATH": SANDBOX_PATH}, cwd="/", uid=None, on_output=on_output
                )
            return self._run_plain(command, base, on_output)

    def _run_plain(self, command: IsolatedCommand, base: Path, on_output: OutputCallback | None) -> IsolatedResult:
        root = os.geteuid() == 0
        work = base / "work"
        work.mkdir(mode=0o700)
        if root:
            os.chown(work, NOBODY, NOBODY)
        mapping: dict[str, str] = {}
        for host, target in command.read_only.items():
            if str(host) == target:
                mapping[target] = target
                continue
            copy = base / "ro" / target.lstrip("/")
            try:
                _copy_read_only(Path(host), copy, base)
            except OSError as error:
                return IsolatedResult(
                    None, "", f"orket: could not prepare {target}: {error}", 0, False, self.describe()
                )
            mapping[target] = str(copy)
        mapping.update({target: str(host) for host, target in command.writable.items()})

        def rewrite(text: str) -> str:
            for target, local in sorted(mapping.items(), key=lambda item: -len(item[0])):
                if text == target or text.startswith(target.rstrip("/") + "/"):
                    return local + text[len(target) :]
            return text

        argv = [rewrite(part) for part in command.argv]
        env = {key: rewrite(value) for key, value in sandbox_env(command, home=str(work)).items()}
        cwd = rewrite(command.workdir)
        if cwd == command.workdir:
            cwd = str(work)
        uid = NOBODY if root else None
        return self._supervise(command, argv, env=env, cwd=cwd, uid=uid, on_output=on_output)

    def _supervise(
        self,
        command: IsolatedCommand,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: str,
        uid: int | None,
        on_output: OutputCallback | None = None,
    ) -> IsolatedResult:
        limits = command.limits
        rlimits = rlimits_for(limits)
        if self.bwrap is not None and os.geteuid() == 0:
            # bubblewrap itself needs room to set up; the command inherits these limits after setpriv.
            rlimits["RLIMIT_AS"] = max(rlimits["RLIMIT_AS"], 64 * 1024 * 1024)
        read_status, write_status = os.pipe()
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                supervisor_argv(
                    argv,
                    env=env,
                    cwd=cwd,
                    rlimits=rlimits,
                    timeout=limits.timeout_seconds,
                    status_fd=write_status,
                    uid=uid,
                    gid=uid,
                ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_status,),
                start_new_session=True,
                env={"PATH": SANDBOX_PATH, "LANG": "C.UTF-8"},
                cwd="/",
            )
        finally:
            os.close(write_status)
        assert process.stdout is not None and process.stderr is not None
        stdout = _Capped(process.stdout, limits.max_output_bytes, _stream_to(on_output, "stdout"))
        stderr = _Capped(process.stderr, limits.max_output_bytes, _stream_to(on_output, "stderr"))
        status = _Capped(os.fdopen(read_status, "rb"), 65536)
        killed = False
        try:
            process.wait(timeout=limits.timeout_seconds + KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            killed = True
            _kill_group(process, _status_lines(status.data).get("child"))
        status.text()  # waits for the supervisor's last line
        outcome = _status_lines(status.data)
        duration_ms = int((time.monotonic() - started) * 1000)
        out, err = stdout.text(), stderr.text()
        signal_number = outcome.get("signal")
        exit_code = outcome.get("exit_code")
        if signal_number is not None:
            exit_code = -int(signal_number)
        timed_out = bool(outcome.get("timed_out")) or killed
        return IsolatedResult(
            exit_code=None if timed_out else exit_code,
            stdout=out,
            stderr=err,
            duration_ms=duration_ms,
            timed_out=timed_out,
            isolation=self.describe(),
            output_truncated=stdout.truncated or stderr.truncated,
        )


def _stream_to(on_output: OutputCallback | None, stream: str) -> Callable[[str], None] | None:
    if on_output is None:
        return None
    return lambda text: on_output(stream, text)


def _status_lines(data: bytes | bytearray) -> dict[str, Any]:
    """The supervisor's status lines merged: {"child": pid} first, then the outcome."""
    merged: dict[str, Any] = {}
    for line in bytes(data).decode("utf-8", errors="replace").splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            merged.update(value)
    return merged


def _kill_group(process: subprocess.Popen[bytes], child_group: Any) -> None:
    """Last resort when the supervisor itself does not finish: ask it to stop, then kill its group and the
    command's group."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=KILL_GRACE_SECONDS)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    for group in (process.pid, child_group):
        if isinstance(group, int) and group > 1:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
    process.wait()


def _copy_read_only(source: Path, target: Path, base: Path) -> None:
    """Copy `source` (a file or folder) to `target` inside `base`, readable by all and writable by no one
    but the owner (root, or Orket's own user in which case the plain backend cannot protect it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir() and not source.is_symlink():
        total = 0

        def ignore(folder: str, names: list[str]) -> set[str]:
            nonlocal total
            skipped = {name for name in names if name in COPY_SKIP}
            for name in names:
                path = Path(folder) / name
                if name not in skipped and path.is_file() and not path.is_symlink():
                    total += path.stat().st_size
            if total > MAX_COPY_BYTES:
                raise OSError(f"more than {MAX_COPY_BYTES // (1024 * 1024)} MB to copy")
            return skipped

        shutil.copytree(source, target, symlinks=True, ignore=ignore)
    else:
        shutil.copyfile(source, target, follow_symlinks=False)
    for path in [target, *(target.rglob("*") if target.is_dir() else [])]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    folder = target.parent
    while folder != base and folder.is_relative_to(base):
        folder.chmod(0o755)
        folder = folder.parent
