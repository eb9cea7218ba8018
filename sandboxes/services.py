"""Sandbox lifecycle: the writes. Web-side services validate, change rows in one transaction and queue
a Celery task on commit; worker-side services (`sandbox_provision`, `sandbox_halt`,
`sandbox_teardown`, `sandbox_health_check`, `sandbox_logs_capture`, `sandboxes_expire`,
`sandboxes_cleanup`) are the only code that talks to Docker or starts processes.

Status: `creating` -> `running` (every health check passes) or `unhealthy` (a check fails, a
container exited, or no health in time) or `failed` (could not start; last_error says why);
`stop` -> `stopping` -> `stopped`; `delete` -> `stopping` -> `deleted` (containers and volumes
removed, ports released). A sandbox past its time to live is deleted by the periodic clean-up,
which also removes anything labelled `orket.sandbox` that no live row accounts for.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from boards.errors import InvalidInput
from boards.models import Card, Project
from sandboxes import compose, dispatch, local_sandbox, log_follow, log_streams, names, ports
from sandboxes.errors import IllegalSandboxState, NoWorkspace, TooManySandboxes, UnsupportedStack
from sandboxes.instance import instance_id, sandboxes_root, setting, state_dir
from sandboxes.models import Backend, LogStreamKind, Sandbox, SandboxSettings, SandboxStatus
from sandboxes.stacks import detect_stack

log = logging.getLogger(__name__)

LIVE_STATUSES = (
    SandboxStatus.CREATING,
    SandboxStatus.RUNNING,
    SandboxStatus.UNHEALTHY,
    SandboxStatus.STOPPING,
    SandboxStatus.STOPPED,
)
COMPOSE_FILE = "compose.json"
LOGS_FILE = "logs.txt"
LOG_LINES = 500


# -- settings ------------------------------------------------------------------------------------------------


def network_mode() -> str:
    """ORKET_SANDBOX_NETWORK: `internal` (the default; a private network, the app published on
    127.0.0.1) or `host` (host networking bound to 127.0.0.1, for engines without bridge networking)."""
    mode = setting("ORKET_SANDBOX_NETWORK", "internal").lower()
    if mode not in compose.NETWORK_MODES:
        raise InvalidInput(f"ORKET_SANDBOX_NETWORK must be internal or host, not {mode!r}.")
    return mode


def backend_choice() -> str:
    """ORKET_SANDBOX_BACKEND: `auto` (Docker when an engine's socket is configured or present, else
    local), `docker` or `local`. Decided without talking to Docker: only workers do that."""
    mode = setting("ORKET_SANDBOX_BACKEND", "auto").lower()
    if mode in (Backend.DOCKER, Backend.LOCAL):
        return mode
    if mode != "auto":
        raise InvalidInput(f"ORKET_SANDBOX_BACKEND must be auto, docker or local, not {mode!r}.")
    if os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").is_socket():
        return Backend.DOCKER
    return Backend.LOCAL


def images() -> compose.Images:
    default = compose.Images()
    return compose.Images(
        python=setting("ORKET_SANDBOX_IMAGE_PYTHON", default.python),
        node=setting("ORKET_SANDBOX_IMAGE_NODE", default.node),
        dotnet=setting("ORKET_SANDBOX_IMAGE_DOTNET", default.dotnet),
        postgresql=setting("ORKET_SANDBOX_IMAGE_POSTGRESQL", default.postgresql),
        mongodb=setting("ORKET_SANDBOX_IMAGE_MONGODB", default.mongodb),
    )


def health_timeout() -> float:
    return float(setting("ORKET_SANDBOX_HEALTH_TIMEOUT", "180"))


def project_settings(project: Project) -> SandboxSettings:
    found, _ = SandboxSettings.objects.get_or_create(project=project)
    return found


def default_workspace(project: Project, card: Card | None) -> Path | None:
    """The card's worktree, else the project's main checkout (where the agents write)."""
    root = Path(settings.DATA_DIR) / "workspaces" / f"project-{project.pk}"
    candidates = [root / "cards" / str(card.pk)] if card is not None else []
    candidates.append(root / "repo")
    return next((path for path in candidates if path.is_dir()), None)


def _isolation(backend: str, network: str) -> str:
    return (_docker_isolation(network) if backend == Backend.DOCKER else local_sandbox.describe(_bwrap()))[:200]


def _docker_isolation(network: str) -> str:
    """Plain words for people (at most 200 characters, the width of `Sandbox.isolation`)."""
    where = (
        "host network, listening on 127.0.0.1 only"
        if network == "host"
        else "private internal network, only the app published on 127.0.0.1"
    )
    return (
        "docker: non-root, no capabilities, no-new-privileges, read-only root and workspace, "
        f"CPU/memory/process limits; {where}"
    )


# -- web side: create, stop, delete ---------------------------------------------------------------------------


def sandbox_create(
    *,
    project: Project,
    card: Card | None = None,
    pull_request_number: int | None = None,
    workspace: str | Path | None = None,
    user: AbstractBaseUser | AnonymousUser | None = None,
) -> Sandbox:
    """Detect the stack, name the sandbox, lease its ports, write its compose file, and queue its start."""
    if card is not None and card.project_id != project.pk:
        raise InvalidInput("The card belongs to another project.")
    path = _workspace_to_run(project, card, workspace)
    stack = _runnable_stack(path)
    backend = backend_choice()
    network = network_mode() if backend == Backend.DOCKER else "host"
    conf = project_settings(project)
    with transaction.atomic():
        _check_room(project, conf)
        sandbox = _sandbox_row(project, card, pull_request_number, path, stack, backend, conf, user)
        leased = ports.lease_ports(sandbox=sandbox, services=compose.services_needing_ports(stack, network))
        plan = _plan(sandbox, stack, path, leased, network)
        _write_compose_file(sandbox, plan)
        sandbox.urls = plan.urls
        sandbox.isolation = _isolation(backend, network)
        sandbox.save(update_fields=["urls", "isolation", "updated_at"])
        log.info(
            "sandbox created",
            extra={
                "sandbox": sandbox.pk,
                "sandbox_name": sandbox.name,
                "project": project.pk,
                "backend": backend,
                "ports": leased,
                "user": getattr(user, "pk", None),
            },
        )
        dispatch.queue_sandbox_provision(sandbox_id=sandbox.pk)
    return sandbox


def _workspace_to_run(project: Project, card: Card | None, workspace: str | Path | None) -> Path:
    path = Path(workspace) if workspace is not None else default_workspace(project, card)
    if path is None or not path.is_dir():
        raise NoWorkspace("There is no workspace to run yet: the agents have not written any code here.")
    return path.resolve()


def _runnable_stack(path: Path) -> dict[str, Any]:
    stack = detect_stack(path)
    if stack.get("kind") == "unknown":
        raise UnsupportedStack(f"Nothing to run: {stack.get('message') or 'no stack was recognised'}")
    return stack


def _check_room(project: Project, conf: SandboxSettings) -> None:
    """At most `max_sandboxes` live sandboxes per project (0: no limit)."""
    if not conf.max_sandboxes:
        return
    live = Sandbox.objects.filter(project=project, status__in=LIVE_STATUSES).count()
    if live >= conf.max_sandboxes:
        raise TooManySandboxes(
            f"The project already has {live} sandboxes (at most {conf.max_sandboxes}); delete one first."
        )


def _sandbox_row(
    project: Project,
    card: Card | None,
    pull_request_number: int | None,
    path: Path,
    stack: dict[str, Any],
    backend: str,
    conf: SandboxSettings,
    user: AbstractBaseUser | AnonymousUser | None,
) -> Sandbox:
    """The new row, `creating`, and its service log stream."""
    sandbox = Sandbox.objects.create(
        project=project,
        card=card,
        pull_request_number=pull_request_number,
        name=names.sandbox_name(
            project_slug=project.slug, card_id=card.pk if card else None, pull_request=pull_request_number
        ),
        workspace_path=str(path),
        stack=stack,
        backend=backend,
        status=SandboxStatus.CREATING,
        created_by=user if user is not None and user.is_authenticated else None,
        expires_at=timezone.now() + timedelta(hours=conf.time_to_live_hours) if conf.time_to_live_hours else None,
    )
    log_streams.log_stream_open(
        project_id=project.pk, kind=LogStreamKind.SERVICE, label=f"sandbox {sandbox.name}", sandbox_id=sandbox.pk
    )
    return sandbox


def _plan(
    sandbox: Sandbox, stack: dict[str, Any], path: Path, leased: dict[str, int], network: str
) -> compose.ComposePlan:
    try:
        return compose.compose_plan(
            sandbox_id=sandbox.pk,
            instance=instance_id(),
            stack=stack,
            workspace=str(path),
            ports=leased,
            network=network,
            images=images(),
        )
    except compose.Refusal as error:
        raise UnsupportedStack(f"This stack cannot run in a sandbox: {error}") from error


def _write_compose_file(sandbox: Sandbox, plan: compose.ComposePlan) -> None:
    folder = state_dir(sandbox)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    compose_path = folder / COMPOSE_FILE
    compose_path.touch(mode=0o600)
    compose_path.write_text(plan.render())  # it holds the sandbox's generated secrets


@dataclass(frozen=True)
class _LifecycleRequest:
    """What a person's stop, start or delete asks of the row: which statuses allow it, the status it
    moves to, and the worker task queued for the rest."""

    action: str
    refusal: Callable[[Sandbox], str]
    new_status: str
    clears_error: bool
    queue: Callable[..., None]
    already_done: str | None = None


def _stop_refusal(sandbox: Sandbox) -> str:
    if sandbox.status not in (SandboxStatus.CREATING, SandboxStatus.RUNNING, SandboxStatus.UNHEALTHY):
        return f"A {sandbox.status} sandbox cannot be stopped."
    return ""


def _start_refusal(sandbox: Sandbox) -> str:
    if sandbox.status != SandboxStatus.STOPPED:
        return f"Only a stopped sandbox can be started again; this one is {sandbox.status}."
    if sandbox.expires_at is not None and sandbox.expires_at <= timezone.now():
        return "The sandbox has passed its time to live; start a new one."
    return ""


def _delete_refusal(sandbox: Sandbox) -> str:
    return "The sandbox is already deleted." if sandbox.status == SandboxStatus.DELETED else ""


_STOP = _LifecycleRequest(
    action="stop",
    refusal=_stop_refusal,
    new_status=SandboxStatus.STOPPING,
    clears_error=False,
    queue=dispatch.queue_sandbox_halt,
    already_done=SandboxStatus.STOPPED,
)
_START = _LifecycleRequest(
    action="start",
    refusal=_start_refusal,
    new_status=SandboxStatus.CREATING,
    clears_error=True,
    queue=dispatch.queue_sandbox_provision,
)
_DELETE = _LifecycleRequest(
    action="delete",
    refusal=_delete_refusal,
    new_status=SandboxStatus.STOPPING,
    clears_error=True,
    queue=dispatch.queue_sandbox_teardown,
)


def _lifecycle_request(
    request: _LifecycleRequest, *, sandbox: Sandbox, user: AbstractBaseUser | AnonymousUser | None
) -> Sandbox:
    """Lock the row, refuse or move it to the request's status, and queue the worker's part on commit."""
    with transaction.atomic():
        locked = Sandbox.objects.select_for_update().get(pk=sandbox.pk)
        if request.already_done is not None and locked.status == request.already_done:
            return locked
        refusal = request.refusal(locked)
        if refusal:
            raise IllegalSandboxState(refusal)
        locked.status = request.new_status
        fields = ["status", "updated_at"]
        if request.clears_error:
            locked.last_error = ""
            fields.append("last_error")
        locked.save(update_fields=fields)
        log.info(f"sandbox {request.action} requested", extra={"sandbox": locked.pk, "user": getattr(user, "pk", None)})
        request.queue(sandbox_id=locked.pk)
    return locked


def sandbox_stop(*, sandbox: Sandbox, user: AbstractBaseUser | AnonymousUser | None = None) -> Sandbox:
    return _lifecycle_request(_STOP, sandbox=sandbox, user=user)


def sandbox_start(*, sandbox: Sandbox, user: AbstractBaseUser | AnonymousUser | None = None) -> Sandbox:
    """Start a stopped sandbox again: same containers (or command), same ports; back to `creating`."""
    return _lifecycle_request(_START, sandbox=sandbox, user=user)


def sandbox_delete(*, sandbox: Sandbox, user: AbstractBaseUser | AnonymousUser | None = None) -> Sandbox:
    return _lifecycle_request(_DELETE, sandbox=sandbox, user=user)


def sandbox_logs_request(*, sandbox: Sandbox, max_age_seconds: float = 2.0) -> None:
    """Ask a worker for fresh logs when the stored ones are older than `max_age_seconds` (Docker only:
    a local process writes its own log file)."""
    if sandbox.backend != Backend.DOCKER or sandbox.status not in LIVE_STATUSES:
        return
    path = state_dir(sandbox) / LOGS_FILE
    try:
        if time.time() - path.stat().st_mtime < max_age_seconds:
            return
    except OSError:
        pass
    dispatch.queue_sandbox_logs_capture(sandbox_id=sandbox.pk)


def _bwrap() -> str | None:
    from sandboxes.local_backend import find_bwrap

    return find_bwrap()


# -- worker side ----------------------------------------------------------------------------------------------


def _compose_path(sandbox: Sandbox) -> Path:
    return state_dir(sandbox) / COMPOSE_FILE


def _set_status(sandbox_id: int, *, expected: tuple[str, ...], **fields: Any) -> bool:
    """Change the row only while it is still in one of `expected` (a delete may have come meanwhile)."""
    fields["updated_at"] = timezone.now()
    return Sandbox.objects.filter(pk=sandbox_id, status__in=expected).update(**fields) == 1


def sandbox_provision(*, sandbox_id: int) -> Sandbox:
    """Start the sandbox (compose up, or the local process) and wait until it is healthy."""
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    if sandbox.status != SandboxStatus.CREATING:
        return sandbox
    log_follow.sandbox_logs_follow(sandbox_id=sandbox.pk)  # the logs stream live from the first line
    try:
        if sandbox.backend == Backend.DOCKER:
            healthy, detail = _provision_docker(sandbox)
        else:
            healthy, detail = _provision_local(sandbox)
    except Exception as error:  # a failure of any kind must end in `failed`, never in `creating` for ever
        log.exception("sandbox %s could not start", sandbox.pk)
        healthy, detail = None, f"{type(error).__name__}: {error}"
    if healthy is None:
        _set_status(
            sandbox.pk, expected=(SandboxStatus.CREATING,), status=SandboxStatus.FAILED, last_error=detail[-20_000:]
        )
        _remove_everything(sandbox)
        ports.release_ports(sandbox=sandbox)
    else:
        _record_health(sandbox, expected=(SandboxStatus.CREATING,), healthy=healthy, detail=detail[-20_000:])
    sandbox_logs_capture(sandbox_id=sandbox.pk)
    sandbox.refresh_from_db()
    log.info("sandbox provisioned", extra={"sandbox": sandbox.pk, "status": sandbox.status})
    return sandbox


def _record_health(sandbox: Sandbox, *, expected: tuple[str, ...], healthy: bool, detail: str) -> None:
    """One health check's outcome: `running` and a pass counted, or `unhealthy` with why and a failure counted."""
    if healthy:
        _set_status(
            sandbox.pk,
            expected=expected,
            status=SandboxStatus.RUNNING,
            last_error="",
            health_checks_passed=sandbox.health_checks_passed + 1,
            last_health_check_at=timezone.now(),
        )
    else:
        _set_status(
            sandbox.pk,
            expected=expected,
            status=SandboxStatus.UNHEALTHY,
            last_error=detail,
            health_checks_failed=sandbox.health_checks_failed + 1,
            last_health_check_at=timezone.now(),
        )


def _provision_docker(sandbox: Sandbox) -> tuple[bool | None, str]:
    from sandboxes import docker_backend

    result = docker_backend.compose(sandbox.name, _compose_path(sandbox), "up", "-d", "--no-build")
    if not result.ok:
        return None, f"compose up failed: {result.output}"
    engine = docker_backend.client()
    deadline = time.monotonic() + health_timeout()
    health: dict[str, str] = {}
    try:
        while time.monotonic() < deadline:
            if Sandbox.objects.filter(pk=sandbox.pk, status=SandboxStatus.CREATING).count() == 0:
                return False, "stopped or deleted while starting"
            health = docker_backend.health_of(engine, sandbox.pk, instance_id())
            if health and all(state == "healthy" for state in health.values()):
                return True, ""
            bad = {name: state for name, state in health.items() if state == "unhealthy" or state.startswith("exited")}
            if bad:
                return False, f"not healthy: {_describe_health(bad)}"
            time.sleep(0.5)
    finally:
        engine.close()
    return False, f"not healthy within {health_timeout():g} s: {_describe_health(health) or 'no containers'}"


def _describe_health(health: dict[str, str]) -> str:
    return ", ".join(f"{name} {state}" for name, state in sorted(health.items()))


def _local_command(sandbox: Sandbox) -> dict[str, Any]:
    document = json.loads(_compose_path(sandbox).read_text())
    return document["services"][compose.APP]


def _provision_local(sandbox: Sandbox) -> tuple[bool | None, str]:
    service = _local_command(sandbox)
    ttl = int((sandbox.expires_at - timezone.now()).total_seconds()) if sandbox.expires_at else 365 * 86400
    limits = local_sandbox.LocalLimits(
        memory_mb=int(setting("ORKET_SANDBOX_LOCAL_MEMORY_MB", "1024")),
        max_processes=int(setting("ORKET_SANDBOX_LOCAL_MAX_PROCESSES", "256")),
        time_to_live_seconds=max(ttl, 60),
    )
    _pid, isolation = local_sandbox.launch(
        state_dir=state_dir(sandbox),
        workspace=Path(sandbox.workspace_path),
        argv=list(service["command"]),
        workdir=service["working_dir"],
        env=dict(service["environment"]),
        limits=limits,
    )
    Sandbox.objects.filter(pk=sandbox.pk).update(isolation=isolation[:200])
    port = int(service["environment"]["PORT"])
    deadline = time.monotonic() + health_timeout()
    while time.monotonic() < deadline:
        if _port_answers(port):
            return True, ""
        if not local_sandbox.alive(state_dir(sandbox)):
            return False, "the app exited: " + local_sandbox.log_tail(state_dir(sandbox), 20)
        time.sleep(0.25)
    return False, f"nothing answered on 127.0.0.1:{port} within {health_timeout():g} s"


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def sandbox_health_check(*, sandbox_id: int) -> Sandbox:
    """One health check of a running or unhealthy sandbox: counts, time, and running <-> unhealthy."""
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    checked = (SandboxStatus.RUNNING, SandboxStatus.UNHEALTHY)
    if sandbox.status not in checked:
        return sandbox
    if sandbox.backend == Backend.DOCKER:
        from sandboxes import docker_backend

        engine = docker_backend.client()
        try:
            health = docker_backend.health_of(engine, sandbox.pk, instance_id())
        finally:
            engine.close()
        healthy = bool(health) and all(state == "healthy" for state in health.values())
        detail = "" if healthy else f"not healthy: {_describe_health(health) or 'no containers'}"
    else:
        port = int(_local_command(sandbox)["environment"]["PORT"])
        healthy = local_sandbox.alive(state_dir(sandbox)) and _port_answers(port)
        detail = "" if healthy else f"nothing answers on 127.0.0.1:{port}"
    _record_health(sandbox, expected=checked, healthy=healthy, detail=detail)
    sandbox.refresh_from_db()
    return sandbox


def sandboxes_check_health() -> int:
    """Health checks of every running or unhealthy sandbox; logs captured too. The count checked."""
    checked = 0
    for sandbox_id in Sandbox.objects.filter(status__in=(SandboxStatus.RUNNING, SandboxStatus.UNHEALTHY)).values_list(
        "pk", flat=True
    ):
        try:
            sandbox_health_check(sandbox_id=sandbox_id)
            sandbox_logs_capture(sandbox_id=sandbox_id)
            log_follow.sandbox_logs_follow(sandbox_id=sandbox_id)  # again, when its follower stopped
            checked += 1
        except Exception:  # one broken sandbox (or a vanished engine) must not stop the others' checks
            log.exception("health check of sandbox %s failed", sandbox_id)
    return checked


def sandbox_logs_capture(*, sandbox_id: int, tail: int = LOG_LINES) -> str:
    """Store the last `tail` lines of every service's output in the sandbox's state folder."""
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    folder = state_dir(sandbox)
    if sandbox.backend == Backend.DOCKER:
        from sandboxes import docker_backend

        try:
            engine = docker_backend.client()
        except docker_backend.DockerUnavailable as error:
            return f"(logs unavailable: {error})\n"
        try:
            text = docker_backend.logs_of(engine, sandbox.pk, tail=tail, instance=instance_id())
        finally:
            engine.close()
    else:
        text = local_sandbox.log_tail(folder, tail)
    if folder.is_dir() and (text or not (folder / LOGS_FILE).exists()):
        (folder / LOGS_FILE).write_text(text)
    return text


def sandbox_halt(*, sandbox_id: int) -> Sandbox:
    """Stop the sandbox's containers or process, keeping them and its ports: status `stopped`."""
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    if sandbox.status != SandboxStatus.STOPPING:
        return sandbox
    sandbox_logs_capture(sandbox_id=sandbox.pk)
    error = ""
    if sandbox.backend == Backend.DOCKER:
        from sandboxes import docker_backend

        result = docker_backend.compose(sandbox.name, _compose_path(sandbox), "stop", "-t", "5")
        error = "" if result.ok else f"compose stop failed: {result.output}"
    else:
        local_sandbox.stop(state_dir(sandbox))
    _set_status(sandbox.pk, expected=(SandboxStatus.STOPPING,), status=SandboxStatus.STOPPED, last_error=error)
    sandbox.refresh_from_db()
    return sandbox


def _remove_everything(sandbox: Sandbox) -> str:
    """compose down -v (no grace: everything is being thrown away), then anything still labelled with
    this sandbox; the errors, if any."""
    errors = []
    if sandbox.backend == Backend.DOCKER:
        from sandboxes import docker_backend

        path = _compose_path(sandbox)
        if path.exists():
            result = docker_backend.compose(sandbox.name, path, "down", "-v", "--remove-orphans", "-t", "0")
            if not result.ok:
                errors.append(f"compose down failed: {result.output}")
        try:
            engine = docker_backend.client()
        except docker_backend.DockerUnavailable as error:
            errors.append(str(error))
        else:
            try:
                docker_backend.remove_labelled(engine, {str(sandbox.pk)}, instance_id())
            finally:
                engine.close()
    else:
        local_sandbox.stop(state_dir(sandbox))
    return "\n".join(errors)


def sandbox_teardown(*, sandbox_id: int) -> Sandbox:
    """Remove containers, volumes and networks (or the process), release the ports: status `deleted`."""
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    if sandbox.status == SandboxStatus.DELETED:
        return sandbox
    try:
        sandbox_logs_capture(sandbox_id=sandbox.pk)
    except Exception:  # the logs are a courtesy; deleting must go on
        log.exception("could not capture the logs of sandbox %s", sandbox.pk)
    errors = _remove_everything(sandbox)
    with transaction.atomic():
        ports.release_ports(sandbox=sandbox)
        Sandbox.objects.filter(pk=sandbox.pk).update(
            status=SandboxStatus.DELETED, last_error=errors[-20_000:], updated_at=timezone.now()
        )
    (state_dir(sandbox) / COMPOSE_FILE).unlink(missing_ok=True)  # it held the generated secrets
    log_follow.wait_until_stopped(sandbox.pk)  # its last lines first (a follower of this process)
    log_follow.sandbox_log_streams_close(sandbox_id=sandbox.pk)
    log.info("sandbox deleted", extra={"sandbox": sandbox.pk})
    sandbox.refresh_from_db()
    return sandbox


def sandboxes_expire() -> int:
    """Delete every live sandbox past its time to live; the count."""
    expired = list(
        Sandbox.objects.filter(status__in=LIVE_STATUSES, expires_at__lte=timezone.now()).values_list("pk", flat=True)
    )
    for sandbox_id in expired:
        Sandbox.objects.filter(pk=sandbox_id).update(status=SandboxStatus.STOPPING, updated_at=timezone.now())
        sandbox_teardown(sandbox_id=sandbox_id)
    return len(expired)


def sandboxes_fail_stale() -> int:
    """Sandboxes still `creating` long after any start could take (the worker starting them died):
    `failed`, with everything they started removed and their ports released. The count."""
    cutoff = timezone.now() - timedelta(seconds=health_timeout() + 600)
    stale = list(
        Sandbox.objects.filter(status=SandboxStatus.CREATING, updated_at__lt=cutoff).values_list("pk", flat=True)
    )
    for sandbox_id in stale:
        message = "The worker starting this sandbox stopped before it was healthy; start a new one."
        if _set_status(sandbox_id, expected=(SandboxStatus.CREATING,), status=SandboxStatus.FAILED, last_error=message):
            sandbox = Sandbox.objects.get(pk=sandbox_id)
            _remove_everything(sandbox)
            ports.release_ports(sandbox=sandbox)
    return len(stale)


def sandboxes_settle_stuck_stops() -> int:
    """Sandboxes left `stopping` by a worker that died: stopped now (containers or process stopped,
    ports kept), so a person can start or delete them again. The count."""
    cutoff = timezone.now() - timedelta(minutes=15)
    stuck = list(
        Sandbox.objects.filter(status=SandboxStatus.STOPPING, updated_at__lt=cutoff).values_list("pk", flat=True)
    )
    for sandbox_id in stuck:
        sandbox = sandbox_halt(sandbox_id=sandbox_id)
        if sandbox.status == SandboxStatus.STOPPED:
            note = "The worker stopping or deleting this sandbox stopped; it is stopped now: delete it again if needed."
            Sandbox.objects.filter(pk=sandbox_id).update(last_error=(note + "\n" + sandbox.last_error).strip())
    return len(stuck)


def sandboxes_cleanup() -> dict[str, int]:
    """Expiry and stale starts, then remove what Orket started that no live sandbox row accounts for."""
    expired = sandboxes_expire()
    stale = sandboxes_fail_stale()
    stuck = sandboxes_settle_stuck_stops()
    live = {str(pk) for pk in Sandbox.objects.filter(status__in=LIVE_STATUSES).values_list("pk", flat=True)}
    removed = verification = 0
    from sandboxes import docker_backend

    if docker_backend.engine_answers():
        engine = docker_backend.client()
        try:
            orphans = docker_backend.labelled_sandbox_ids(engine, instance_id()) - live
            if orphans:
                log.warning("removing containers of sandboxes no row accounts for: %s", sorted(orphans))
                removed = docker_backend.remove_labelled(engine, orphans, instance_id())
            verification = docker_backend.remove_stale_verification_containers(engine, older_than_seconds=3600)
        finally:
            engine.close()
    local = 0
    root = sandboxes_root()
    if root.is_dir():
        live_names = set(Sandbox.objects.filter(status__in=LIVE_STATUSES).values_list("name", flat=True))
        for folder in root.iterdir():
            if folder.name not in live_names and local_sandbox.pid_of(folder) is not None:
                local += int(local_sandbox.stop(folder))
    return {
        "expired": expired,
        "stale_starts": stale,
        "stuck_stops": stuck,
        "orphan_containers": removed,
        "stale_verification": verification,
        "orphan_processes": local,
    }
