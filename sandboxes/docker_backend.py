"""The Docker backend: throwaway verification containers (`DockerRunner`) and compose stacks.

Only Celery workers call this module: web requests never talk to Docker. The engine is found the
docker SDK's usual way (DOCKER_HOST, else the default socket). Compose is `docker compose` (the v2
plugin) or `docker-compose` (v1), whichever answers first, found once per process.

`DockerRunner` implements `sandboxes.isolation.IsolatedRunner`: each command runs in a new container
with no network (`network_mode: none`), a read-only root, every capability dropped,
no-new-privileges, uid/gid 65534, memory (no swap on top), process and CPU limits, a private tmpfs
/tmp, and read-only bind mounts of exactly the paths it is given (plus read-write binds of the
throwaway folders in `command.writable`, for agent commands). It never gets the Docker socket or any
other host path. After the timeout it is killed; it is always removed; output is capped. With an
`on_output` callback, the container's log is followed as it is written and handed on.
No Django imports.
"""

from __future__ import annotations

import codecs
import functools
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import DockerException, NotFound

from sandboxes.isolation import IsolatedCommand, IsolatedResult, Limits, OutputCallback

log = logging.getLogger(__name__)

SANDBOX_LABEL = "orket.sandbox"
VERIFICATION_LABEL = "orket.verification"
INSTANCE_LABEL = "orket.instance"
DEFAULT_RUNNER_IMAGE = "python:3.12-slim-bookworm"
NOBODY = "65534:65534"
TMP_SIZE = "64m"
FORBIDDEN_SOURCES = ("/var/run/docker.sock", "/run/docker.sock")


class DockerUnavailable(RuntimeError):
    """No engine answers, or compose is missing."""


def client(timeout: int = 60) -> docker.DockerClient:
    try:
        found = docker.from_env(timeout=timeout)
        found.ping()
    except DockerException as error:
        raise DockerUnavailable(f"no Docker engine answers: {error}") from error
    return found


def engine_answers() -> bool:
    try:
        client(timeout=5).close()
    except DockerUnavailable:
        return False
    return True


@functools.cache
def compose_command() -> tuple[str, ...] | None:
    """`docker compose` (v2) when the plugin answers, else `docker-compose` (v1), else None."""
    candidates: list[tuple[str, ...]] = []
    if shutil.which("docker"):
        candidates.append(("docker", "compose"))
    if shutil.which("docker-compose"):
        candidates.append(("docker-compose",))
    for candidate in candidates:
        try:
            done = subprocess.run([*candidate, "version"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return candidate
    return None


def log_tools() -> None:
    """Called when a worker starts: find compose once and say what this worker can use."""
    command = compose_command()
    log.info(
        "sandbox tools: engine %s, compose %s",
        "answers" if engine_answers() else "does not answer",
        " ".join(command) if command else "not installed",
    )


def runner_image() -> str:
    return os.environ.get("ORKET_SANDBOX_RUNNER_IMAGE", "").strip() or DEFAULT_RUNNER_IMAGE


def image_present(engine: docker.DockerClient, image: str, *, pull: bool = False) -> bool:
    try:
        engine.images.get(image)
        return True
    except NotFound:
        pass
    except DockerException:
        return False
    if not pull:
        return False
    try:
        engine.images.pull(image)
    except DockerException as error:
        log.warning("could not pull %s: %s", image, error)
        return False
    return True


# -- throwaway containers for verification -------------------------------------------------------------------


class DockerRunner:
    """Runs one `IsolatedCommand` in a throwaway container; see the module docstring."""

    name = "docker"

    def __init__(self, *, image: str | None = None, engine: docker.DockerClient | None = None) -> None:
        self.image = image or runner_image()
        self._engine = engine
        # The value of the orket.verification label on this runner's containers (clean-up looks at the key).
        self.label = secrets.token_hex(8)

    @property
    def engine(self) -> docker.DockerClient:
        if self._engine is None:
            self._engine = client()
        return self._engine

    def available(self) -> bool:
        try:
            return image_present(self.engine, self.image, pull=os.environ.get("ORKET_SANDBOX_PULL", "0") == "1")
        except DockerUnavailable:
            return False

    def describe(self, limits: Limits | None = None) -> str:
        limits = limits or Limits()
        return (
            f"docker container ({self.image}): no network, read-only root and inputs, uid 65534, "
            f"all capabilities dropped, no-new-privileges, {limits.memory_mb} MB memory, "
            f"{limits.max_processes} processes, {limits.cpus:g} CPUs, private /tmp, "
            f"killed after {limits.timeout_seconds:g} s"
        )

    def run(self, command: IsolatedCommand, on_output: OutputCallback | None = None) -> IsolatedResult:
        started = time.monotonic()
        staging = Path(tempfile.mkdtemp(prefix="orket-docker-ro-"))
        try:
            volumes = _read_only_volumes(command.read_only, staging)
            volumes.update(_writable_volumes(command.writable))
            return self._run(command, volumes, started, on_output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _run(
        self,
        command: IsolatedCommand,
        volumes: dict[str, dict[str, str]],
        started: float,
        on_output: OutputCallback | None = None,
    ) -> IsolatedResult:
        limits = command.limits
        container = self.engine.containers.create(
            self.image,
            command=list(command.argv),
            working_dir=command.workdir,
            environment=dict(command.env),
            user=NOBODY,
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m",
            pids_limit=limits.max_processes,
            nano_cpus=int(limits.cpus * 1_000_000_000),
            ulimits=[
                docker.types.Ulimit(name="nofile", soft=256, hard=256),
                docker.types.Ulimit(name="core", soft=0, hard=0),
            ],
            tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={TMP_SIZE},mode=1777"} if command.writable_tmp else {},  # noqa: S108
            volumes=volumes,
            labels={VERIFICATION_LABEL: self.label},
            log_config=docker.types.LogConfig(
                type="json-file", config={"max-size": str(max(limits.max_output_bytes * 2, 65536)), "max-file": "1"}
            ),
            detach=True,
        )
        timed_out = False
        exit_code: int | None = None
        try:
            container.start()
            followers = _follow_output(container, on_output, limits.max_output_bytes) if on_output else []
            try:
                status = container.wait(timeout=max(limits.timeout_seconds, 0.1))
                exit_code = int(status.get("StatusCode", -1))
            except requests.exceptions.RequestException:
                timed_out = True
                _quietly(container.kill)
                _quietly(lambda: container.wait(timeout=30))
            for follower in followers:
                follower.join(timeout=5)
            stdout, cut_out = _capped(container.logs(stdout=True, stderr=False), limits.max_output_bytes)
            stderr, cut_err = _capped(container.logs(stdout=False, stderr=True), limits.max_output_bytes)
            if not timed_out and exit_code == 137 and _oom_killed(container):
                stderr += "\norket: the container ran out of memory and was killed\n"
        finally:
            _quietly(lambda: container.remove(force=True, v=True))
        return IsolatedResult(
            exit_code=None if timed_out else exit_code,
            stdout=stdout,
            stderr=stderr,
            duration_ms=int((time.monotonic() - started) * 1000),
            timed_out=timed_out,
            isolation=self.describe(limits),
            output_truncated=cut_out or cut_err,
        )


def _follow_output(container: Any, on_output: OutputCallback, limit: int) -> list[threading.Thread]:
    """One thread per stream following the container's log as it is written, handing each piece on until
    the container stops or `limit` bytes were handed on (the result is read from the log afterwards)."""

    def follow(stream: str) -> None:
        sent = 0
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            for chunk in container.logs(stdout=stream == "stdout", stderr=stream == "stderr", stream=True, follow=True):
                piece = chunk[: max(limit - sent, 0)]
                sent += len(piece)
                text = decoder.decode(piece)
                if text:
                    on_output(stream, text)
                if sent >= limit:
                    return
        except (DockerException, requests.exceptions.RequestException) as error:
            log.debug("stopped following the output of a container: %s", error)
        except Exception:  # a listener that fails must not break the run
            log.exception("output callback failed")

    threads = [threading.Thread(target=follow, args=(name,), daemon=True) for name in ("stdout", "stderr")]
    for thread in threads:
        thread.start()
    return threads


def _writable_volumes(writable: dict[Path, str]) -> dict[str, dict[str, str]]:
    """Read-write bind mounts of throwaway folders (their owner must be uid 65534 to be written)."""
    volumes: dict[str, dict[str, str]] = {}
    for source, target in writable.items():
        resolved = Path(source).resolve()
        if (
            any(Path(socket_path).resolve().is_relative_to(resolved) for socket_path in FORBIDDEN_SOURCES)
            or not resolved.is_dir()
            or not target.startswith("/")
        ):
            raise ValueError(f"refusing to mount {source} at {target}")
        volumes[str(resolved)] = {"bind": target, "mode": "rw"}
    return volumes


def _readable_by_others(path: Path) -> bool:
    """True when uid 65534 can read the whole tree (directories also searchable); symlinks are not followed."""

    def ok(item: Path, folder: bool) -> bool:
        mode = item.lstat().st_mode
        return bool(mode & 0o004) and (not folder or bool(mode & 0o001))

    if path.is_file():
        return ok(path, False)
    if not ok(path, True):
        return False
    for folder, dirs, files in os.walk(path):
        base = Path(folder)
        if not all(ok(base / d, True) for d in dirs) or not all(ok(base / f, False) for f in files):
            return False
    return True


def _read_only_volumes(read_only: dict[Path, str], staging: Path) -> dict[str, dict[str, str]]:
    """Bind mounts of exactly the given paths, read-only. A path that uid 65534 could not read is
    copied first into a private staging folder with readable modes (symlinks copied as links)."""
    volumes: dict[str, dict[str, str]] = {}
    staging.chmod(0o755)
    for index, (source, target) in enumerate(read_only.items()):
        resolved = Path(source).resolve()
        if (
            any(Path(socket_path).resolve().is_relative_to(resolved) for socket_path in FORBIDDEN_SOURCES)
            or resolved.is_socket()
            or not target.startswith("/")
            or not resolved.exists()
        ):
            raise ValueError(f"refusing to mount {source} at {target}")
        if not _readable_by_others(resolved):
            copy = staging / str(index)
            if resolved.is_dir():
                shutil.copytree(resolved, copy, symlinks=True)
            else:
                shutil.copy2(resolved, copy)
            for folder, _dirs, files in os.walk(copy):
                Path(folder).chmod(0o755)
                for name in files:
                    item = Path(folder) / name
                    if not item.is_symlink():
                        item.chmod(0o755 if item.stat().st_mode & 0o100 else 0o644)
            copy.chmod(0o755 if copy.is_dir() or copy.stat().st_mode & 0o100 else 0o644)
            resolved = copy
        volumes[str(resolved)] = {"bind": target, "mode": "ro"}
    return volumes


def _capped(raw: bytes, limit: int) -> tuple[str, bool]:
    if len(raw) > limit:
        return raw[:limit].decode("utf-8", errors="replace"), True
    return raw.decode("utf-8", errors="replace"), False


def _oom_killed(container: Any) -> bool:
    try:
        container.reload()
        return bool(container.attrs.get("State", {}).get("OOMKilled"))
    except DockerException:
        return False


def _quietly(action: Any) -> None:
    try:
        action()
    except (DockerException, requests.exceptions.RequestException) as error:
        log.debug("ignored while cleaning up a container: %s", error)


# -- compose stacks ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComposeResult:
    ok: bool
    output: str


def compose(project: str, compose_file: Path, *args: str, timeout: float = 600) -> ComposeResult:
    """Run `<compose> -p project -f file args...`; never raises for a failing command."""
    command = compose_command()
    if command is None:
        raise DockerUnavailable("neither `docker compose` nor `docker-compose` is installed")
    argv = [*command, "-p", project, "-f", str(compose_file), *args]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=compose_file.parent,
            env={**os.environ, "COMPOSE_PROJECT_NAME": project},
        )
    except subprocess.TimeoutExpired as error:
        return ComposeResult(ok=False, output=f"{' '.join(argv[:2])} {' '.join(args)} timed out: {error}")
    return ComposeResult(ok=done.returncode == 0, output=(done.stdout + done.stderr)[-20_000:])


def _label_filter(label: str, instance: str) -> dict[str, list[str]]:
    return {"label": [label, *([f"{INSTANCE_LABEL}={instance}"] if instance else [])]}


def containers_of(engine: docker.DockerClient, sandbox_id: int, instance: str = "") -> list[Any]:
    return engine.containers.list(all=True, filters=_label_filter(f"{SANDBOX_LABEL}={sandbox_id}", instance))


def health_of(engine: docker.DockerClient, sandbox_id: int, instance: str = "") -> dict[str, str]:
    """Service name to `healthy`, `unhealthy`, `starting`, or the container state when it has no check."""
    found: dict[str, str] = {}
    for container in containers_of(engine, sandbox_id, instance):
        state = container.attrs.get("State", {})
        service = container.labels.get("com.docker.compose.service", container.name)
        health = (state.get("Health") or {}).get("Status")
        found[service] = health or state.get("Status", "unknown")
        if state.get("Status") in ("exited", "dead"):
            found[service] = f"exited ({state.get('ExitCode')})"
    return found


def logs_of(engine: docker.DockerClient, sandbox_id: int, tail: int = 200, instance: str = "") -> str:
    parts = []
    for container in sorted(containers_of(engine, sandbox_id, instance), key=lambda c: c.name):
        service = container.labels.get("com.docker.compose.service", container.name)
        try:
            text = container.logs(tail=tail, stdout=True, stderr=True).decode("utf-8", errors="replace")
        except DockerException as error:
            text = f"(logs unavailable: {error})\n"
        parts.extend(f"{service} | {line}" for line in text.splitlines())
    return "\n".join(parts[-tail * 4 :]) + ("\n" if parts else "")


def _labelled(engine: docker.DockerClient, instance: str) -> list[tuple[str, Any, str]]:
    """(kind, object, sandbox id) of every container, volume and network labelled orket.sandbox."""
    filters = _label_filter(SANDBOX_LABEL, instance)
    found: list[tuple[str, Any, str]] = []
    for container in engine.containers.list(all=True, filters=filters):
        found.append(("container", container, container.labels.get(SANDBOX_LABEL, "")))
    for volume in engine.volumes.list(filters=filters):
        found.append(("volume", volume, (volume.attrs.get("Labels") or {}).get(SANDBOX_LABEL, "")))
    for network in engine.networks.list(filters=filters):
        found.append(("network", network, (network.attrs.get("Labels") or {}).get(SANDBOX_LABEL, "")))
    return found


def remove_labelled(engine: docker.DockerClient, sandbox_ids: Iterable[str], instance: str = "") -> int:
    """Remove every container, then volume and network, labelled with one of these sandbox ids (and this
    instance, when given); the number of containers removed."""
    wanted = set(sandbox_ids)
    removed = 0
    for kind, item, sandbox_id in _labelled(engine, instance):  # containers come first, so volumes are free
        if sandbox_id not in wanted:
            continue
        if kind == "container":
            _quietly(lambda c=item: c.remove(force=True, v=True))
            removed += 1
        elif kind == "volume":
            _quietly(lambda v=item: v.remove(force=True))
        else:
            _quietly(item.remove)
    return removed


def labelled_sandbox_ids(engine: docker.DockerClient, instance: str = "") -> set[str]:
    """Every value of the orket.sandbox label on a container, volume or network (of this instance)."""
    return {sandbox_id for _kind, _item, sandbox_id in _labelled(engine, instance)}


def _created_timestamp(created: str) -> float:
    """Docker's `Created` ("2026-12-02T02:50:11.123456789Z") as a POSIX timestamp."""
    return datetime.strptime(created[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


def remove_stale_verification_containers(engine: docker.DockerClient, older_than_seconds: float) -> int:
    """Verification containers whose runner died before removing them."""
    removed = 0
    now = time.time()
    for container in engine.containers.list(all=True, filters={"label": VERIFICATION_LABEL}):
        try:
            started = _created_timestamp(container.attrs.get("Created", ""))
        except ValueError:
            continue
        if now - started > older_than_seconds:
            _quietly(lambda c=container: c.remove(force=True, v=True))
            removed += 1
    return removed
