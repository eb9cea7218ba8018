# ruff: noqa: S108  (every /tmp here is inside a container, a private tmpfs, never the host's)
"""Compose generation: the compose file that runs what the agents built, per detected stack. Pure.

`compose_plan()` turns the stack dict of `sandboxes.stacks.detect_stack` into a compose document
(file format 2.4, which `docker-compose` v1 and the `docker compose` v2 plugin both read; written as
JSON, which is YAML) with, on every service:

- a health check, CPU, memory and process limits, a capped json-file log;
- `cap_drop: [ALL]`, `security_opt: [no-new-privileges:true]`, a non-root `user`, `read_only: true`
  with a private tmpfs for /tmp (and whatever else the image must write);
- the label `orket.sandbox=<id>` (also on every volume and network), so clean-up finds it, and
  `orket.instance=<instance>` when given, so two Orket installations sharing an engine (or two test
  runs) never take each other's sandboxes for orphans;
- the workspace mounted read-only; never the Docker socket, never another host path.

Secrets (the database passwords, the app's SECRET_KEY) are generated per sandbox with
`secrets.token_urlsafe`, never fixed. Networking, `network`:

- `internal` (the default): the services share a private network with `internal: true` (no way
  out); the app also joins an `edge` network only so that its port can be published, on 127.0.0.1
  and the leased host port only. Databases publish nothing.
- `host`: every service uses `network_mode: host` and listens on 127.0.0.1 on a leased port (for
  machines whose engine has no bridge networking, such as the test machines). Weaker: the services
  share the host's loopback.
"""

from __future__ import annotations

import json
import secrets
import shlex
from dataclasses import dataclass, field
from typing import Any

NETWORK_MODES = ("internal", "host")
APP = "app"
INNER_APP_PORT = 8000
LABEL = "orket.sandbox"
INSTANCE_LABEL = "orket.instance"
NOBODY = "65534:65534"
LOOPBACK = "127.0.0.1"


class Refusal(ValueError):
    """The plan's refusal: the stack cannot be run in a sandbox (unknown, or no way to start it). A rule,
    free of Django like this module; the services raise it as `sandboxes.errors.UnsupportedStack`."""


@dataclass(frozen=True)
class ServiceLimits:
    cpus: float = 1.0
    memory_mb: int = 512
    pids: int = 256


@dataclass(frozen=True)
class Images:
    python: str = "python:3.12-slim-bookworm"
    node: str = "node:20-bookworm-slim"
    dotnet: str = "mcr.microsoft.com/dotnet/sdk:8.0"
    postgresql: str = "postgres:16-bookworm"
    mongodb: str = "mongo:7"


@dataclass(frozen=True)
class ComposePlan:
    document: dict[str, Any]
    urls: dict[str, str]
    secrets: dict[str, str] = field(repr=False)
    services: tuple[str, ...]

    def render(self) -> str:
        return render(self.document)


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def services_needing_ports(stack: dict[str, Any], network: str) -> list[str]:
    """The services that need a leased host port: the app always, the databases in host mode."""
    _check_network(network)
    databases = list(stack.get("databases") or []) if network == "host" else []
    return [APP, *databases]


def generate_secrets(stack: dict[str, Any]) -> dict[str, str]:
    values = {"secret_key": secrets.token_urlsafe(32)}
    for database in stack.get("databases") or []:
        values[f"{database}_password"] = secrets.token_urlsafe(24)
    return values


def compose_plan(
    *,
    sandbox_id: int,
    instance: str = "",
    stack: dict[str, Any],
    workspace: str,
    ports: dict[str, int],
    network: str = "internal",
    images: Images | None = None,
    app_limits: ServiceLimits | None = None,
    database_limits: ServiceLimits | None = None,
    secret_values: dict[str, str] | None = None,
) -> ComposePlan:
    """The compose document for one sandbox. `ports` maps service names to leased host ports."""
    _check_inputs(stack, workspace, ports, network)
    images = images or Images()
    secret_values = secret_values or generate_secrets(stack)
    labels = {LABEL: str(sandbox_id), **({INSTANCE_LABEL: instance} if instance else {})}
    host = network == "host"
    databases = _DatabaseServices.of(
        stack,
        images=images,
        secret_values=secret_values,
        ports=ports,
        host=host,
        limits=database_limits or ServiceLimits(cpus=0.5, memory_mb=512, pids=128),
        labels=labels,
    )
    listen_host = LOOPBACK if host else "0.0.0.0"  # noqa: S104 - inside the container's own network namespace
    listen_port = ports[APP] if host else INNER_APP_PORT
    app = _app_service(stack, images, workspace, listen_host, listen_port, app_limits or ServiceLimits(), labels)
    app["environment"] = {**app["environment"], **databases.app_environment}
    if databases.services:
        app["depends_on"] = {database: {"condition": "service_healthy"} for database in databases.services}
    services = {APP: app, **databases.services}
    document: dict[str, Any] = {"version": "2.4", "services": services}
    _connect(document, ports=ports, host=host, labels=labels)
    if databases.volumes:
        document["volumes"] = databases.volumes
    return ComposePlan(
        document=document,
        urls={APP: f"http://{LOOPBACK}:{ports[APP]}/"},
        secrets=secret_values,
        services=tuple(services),
    )


def _check_inputs(stack: dict[str, Any], workspace: str, ports: dict[str, int], network: str) -> None:
    _check_network(network)
    if not workspace.startswith("/"):
        raise ValueError("the workspace must be an absolute path")
    for service in services_needing_ports(stack, network):
        port = ports.get(service)
        if not isinstance(port, int) or not 1024 <= port <= 65535:
            raise ValueError(f"no leased port for the service {service!r}")


@dataclass(frozen=True)
class _DatabaseServices:
    """The stack's databases: their services and volumes, and what the app needs to reach them (its
    secret key comes first, so the app's environment is built here in one place)."""

    services: dict[str, Any]
    volumes: dict[str, Any]
    app_environment: dict[str, str]

    @classmethod
    def of(
        cls,
        stack: dict[str, Any],
        *,
        images: Images,
        secret_values: dict[str, str],
        ports: dict[str, int],
        host: bool,
        limits: ServiceLimits,
        labels: dict[str, str],
    ) -> _DatabaseServices:
        services: dict[str, Any] = {}
        volumes: dict[str, Any] = {}
        app_environment = {"SECRET_KEY": secret_values["secret_key"], "DJANGO_SECRET_KEY": secret_values["secret_key"]}
        for database in [d for d in stack.get("databases") or [] if d in ("postgresql", "mongodb")]:
            password = secret_values[f"{database}_password"]
            db_host = LOOPBACK if host else database
            if database == "postgresql":
                port = ports["postgresql"] if host else 5432
                services[database] = _postgresql(images.postgresql, password, port, host, limits, labels)
                volumes["postgresql-data"] = {"labels": labels}
                app_environment["DATABASE_URL"] = f"postgres://app:{password}@{db_host}:{port}/app"
            else:
                port = ports["mongodb"] if host else 27017
                services[database] = _mongodb(images.mongodb, password, port, host, limits, labels)
                volumes["mongodb-data"] = {"labels": labels}
                volumes["mongodb-config"] = {"labels": labels}
                app_environment["MONGODB_URL"] = f"mongodb://app:{password}@{db_host}:{port}/?authSource=admin"
        return cls(services=services, volumes=volumes, app_environment=app_environment)


def _connect(document: dict[str, Any], *, ports: dict[str, int], host: bool, labels: dict[str, str]) -> None:
    """Host networking for every service, or the private `internal` network for all and the `edge`
    network for the app alone, its port published on 127.0.0.1."""
    services = document["services"]
    if host:
        for service in services.values():
            service["network_mode"] = "host"
        return
    for name, service in services.items():
        service["networks"] = ["internal", "edge"] if name == APP else ["internal"]
    services[APP]["ports"] = [f"{LOOPBACK}:{ports[APP]}:{INNER_APP_PORT}"]
    document["networks"] = {
        "internal": {"internal": True, "labels": labels},
        "edge": {"labels": labels},
    }


def _check_network(network: str) -> None:
    if network not in NETWORK_MODES:
        raise ValueError(f"network must be one of {', '.join(NETWORK_MODES)}, not {network!r}")


def _hardened(image: str, limits: ServiceLimits, labels: dict[str, str], *, user: str) -> dict[str, Any]:
    return {
        "image": image,
        "user": user,
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "cpus": limits.cpus,
        "mem_limit": f"{limits.memory_mb}m",
        "memswap_limit": f"{limits.memory_mb}m",
        "pids_limit": limits.pids,
        "tmpfs": ["/tmp:rw,nosuid,nodev,size=256m,mode=1777"],
        "labels": labels,
        "restart": "no",
        "stop_grace_period": "5s",
        "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "2"}},
    }


def _healthcheck(test: list[str]) -> dict[str, Any]:
    return {"test": test, "interval": "2s", "timeout": "3s", "retries": 5, "start_period": "60s"}


def _tcp_check_python(port: int) -> list[str]:
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 2).close()"
    return ["CMD", "python3", "-c", probe]


@dataclass(frozen=True)
class _AppStart:
    """How the app of one kind of stack starts inside its container."""

    image: str
    command: list[str]
    workdir: str
    health: list[str]
    environment: dict[str, str] = field(default_factory=dict)


def _app_service(
    stack: dict[str, Any],
    images: Images,
    workspace: str,
    listen_host: str,
    listen_port: int,
    limits: ServiceLimits,
    labels: dict[str, str],
) -> dict[str, Any]:
    root = str(stack.get("root") or ".").strip("/") or "."
    if ".." in root.split("/"):
        raise Refusal("the project folder must lie inside the workspace")
    workdir = "/workspace" if root == "." else f"/workspace/{root}"
    start = _app_start(stack, images, workdir, listen_host, listen_port)
    service = _hardened(start.image, limits, labels, user=NOBODY)
    service.update(
        {
            "command": start.command,
            "working_dir": start.workdir,
            "environment": {
                "HOST": listen_host,
                "PORT": str(listen_port),
                "HOME": "/tmp",
                "ORKET_SANDBOX": "1",
                **start.environment,
            },
            "volumes": [{"type": "bind", "source": workspace, "target": "/workspace", "read_only": True}],
            "healthcheck": _healthcheck(start.health),
        }
    )
    if stack.get("kind") in ("node", "dotnet"):
        service["tmpfs"] = ["/tmp:rw,nosuid,nodev,exec,size=2g,mode=1777"]
    return service


def _app_start(stack: dict[str, Any], images: Images, workdir: str, listen_host: str, listen_port: int) -> _AppStart:
    kind = stack.get("kind")
    framework = stack.get("framework") or ""
    entrypoint = str(stack.get("entrypoint") or "")
    if kind == "python":
        return _python_start(images.python, framework, entrypoint, workdir, listen_host, listen_port)
    if kind == "node":
        return _node_start(images.node, entrypoint, workdir, listen_port)
    if kind == "dotnet":
        return _dotnet_start(images.dotnet, entrypoint, workdir, listen_host, listen_port)
    message = stack.get("message") or "no stack was recognised"
    raise Refusal(f"nothing to run: {message}")


def _python_start(
    image: str, framework: str, entrypoint: str, workdir: str, listen_host: str, listen_port: int
) -> _AppStart:
    q = shlex.quote
    install = (
        "if [ -s requirements.txt ]; then "
        "python3 -m pip install --quiet --no-cache-dir --target /tmp/deps -r requirements.txt || exit 1; fi; "
    )
    if framework == "django":
        start = (
            "python3 manage.py migrate --noinput; "
            f"exec python3 manage.py runserver {q(f'{listen_host}:{listen_port}')} --noreload"
        )
    elif framework == "fastapi":
        start = f"exec python3 -m uvicorn {q(entrypoint or 'main:app')} --host {listen_host} --port {listen_port}"
    elif framework == "flask":
        target = q(entrypoint or "app")
        start = f"exec python3 -m flask --app {target} run --host {listen_host} --port {listen_port}"
    elif entrypoint.endswith(".py"):
        start = f"exec python3 {q(entrypoint)}"
    else:
        raise Refusal("a Python project without a framework needs a script to start (app.py, main.py)")
    return _AppStart(
        image=image,
        command=["sh", "-c", install + start],
        workdir=workdir,
        health=_tcp_check_python(listen_port),
        environment={"PYTHONPATH": "/tmp/deps", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"},
    )


def _node_start(image: str, entrypoint: str, workdir: str, listen_port: int) -> _AppStart:
    start = entrypoint if entrypoint.startswith("npm ") or entrypoint.startswith("node ") else "npm start"
    copy = f"cp -a {shlex.quote(workdir)}/. /tmp/app && cd /tmp/app && npm install --no-audit --no-fund && "
    probe = (
        f"require('net').connect({listen_port}, '127.0.0.1')"
        ".on('connect', () => process.exit(0)).on('error', () => process.exit(1))"
    )
    return _AppStart(
        image=image, command=["sh", "-c", copy + "exec " + start], workdir="/tmp", health=["CMD", "node", "-e", probe]
    )


def _dotnet_start(image: str, entrypoint: str, workdir: str, listen_host: str, listen_port: int) -> _AppStart:
    project = shlex.quote(entrypoint) if entrypoint.endswith(".csproj") else ""
    copy = f"cp -a {shlex.quote(workdir)}/. /tmp/app && cd /tmp/app && "
    return _AppStart(
        image=image,
        command=[
            "sh",
            "-c",
            copy + f"exec dotnet run {('--project ' + project) if project else ''} "
            f"--urls http://{listen_host}:{listen_port}",
        ],
        workdir="/tmp",
        health=["CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{listen_port}"],
        environment={"DOTNET_CLI_HOME": "/tmp", "DOTNET_CLI_TELEMETRY_OPTOUT": "1", "NUGET_PACKAGES": "/tmp/nuget"},
    )


def _postgresql(
    image: str, password: str, port: int, host: bool, limits: ServiceLimits, labels: dict[str, str]
) -> dict[str, Any]:
    service = _hardened(image, limits, labels, user="postgres")
    service["tmpfs"] = [*service["tmpfs"], "/var/run/postgresql:rw,nosuid,nodev,size=16m,mode=1777"]
    service.update(
        {
            "command": ["postgres", "-c", f"listen_addresses={LOOPBACK if host else '*'}", "-p", str(port)],
            "environment": {
                "POSTGRES_USER": "app",
                "POSTGRES_DB": "app",
                "POSTGRES_PASSWORD": password,
                "PGDATA": "/var/lib/postgresql/data/pgdata",
            },
            "volumes": [{"type": "volume", "source": "postgresql-data", "target": "/var/lib/postgresql/data"}],
            "healthcheck": _healthcheck(["CMD", "pg_isready", "-h", "127.0.0.1", "-p", str(port), "-U", "app"]),
        }
    )
    return service


def _mongodb(
    image: str, password: str, port: int, host: bool, limits: ServiceLimits, labels: dict[str, str]
) -> dict[str, Any]:
    service = _hardened(image, limits, labels, user="mongodb")
    bind = LOOPBACK if host else "0.0.0.0"  # noqa: S104 - the private network only; nothing is published
    service.update(
        {
            "command": ["mongod", "--bind_ip", bind, "--port", str(port)],
            "environment": {"MONGO_INITDB_ROOT_USERNAME": "app", "MONGO_INITDB_ROOT_PASSWORD": password},
            "volumes": [
                {"type": "volume", "source": "mongodb-data", "target": "/data/db"},
                {"type": "volume", "source": "mongodb-config", "target": "/data/configdb"},
            ],
            "healthcheck": _healthcheck(
                ["CMD", "mongosh", "--quiet", "--port", str(port), "--eval", "db.adminCommand('ping')"]
            ),
        }
    )
    return service
