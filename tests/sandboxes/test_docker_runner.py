"""DockerRunner, the IsolatedRunner of throwaway containers: what the container may do and see."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sandboxes.docker_backend import VERIFICATION_LABEL, DockerRunner
from sandboxes.isolation import IsolatedCommand, Limits
from tests.sandboxes.docker_engine import DockerEngine, docker_engine  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.slow, pytest.mark.services]

PROBE = """
import json, os, socket
report = {"uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd()}
try:
    socket.create_connection(("127.0.0.1", 22), 1)
    report["net"] = "open"
except OSError as error:
    report["net"] = error.__class__.__name__
for path in ("/workspace/new.txt", "/etc/new.txt", "/tmp/new.txt"):
    try:
        open(path, "w").write("x")
        report[path] = "written"
    except OSError as error:
        report[path] = error.strerror
report["caps"] = [l for l in open("/proc/self/status") if l.startswith(("CapEff", "NoNewPrivs"))]
report["mounts"] = sorted(l.split()[1] for l in open("/proc/self/mounts"))
report["docker_sock"] = os.path.exists("/var/run/docker.sock")
print(json.dumps(report))
"""


@pytest.fixture
def runner(docker_engine: DockerEngine) -> DockerRunner:  # noqa: F811
    return DockerRunner(image=docker_engine.python_image, engine=docker_engine.client)


def _leftovers(runner: DockerRunner) -> list:
    return runner.engine.containers.list(all=True, filters={"label": f"{VERIFICATION_LABEL}={runner.label}"})


def test_the_container_is_locked_down(runner: DockerRunner, tmp_path: Path) -> None:
    import json

    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "probe.py").write_text(PROBE)
    assert runner.available()
    result = runner.run(
        IsolatedCommand(
            argv=("python3", "/workspace/probe.py"), read_only={workspace: "/workspace"}, workdir="/workspace"
        )
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["uid"], report["gid"], report["cwd"]) == (65534, 65534, "/workspace")
    assert report["net"] in ("ConnectionRefusedError", "OSError")  # no network namespace of the host's
    assert report["/workspace/new.txt"] == "Read-only file system"
    assert report["/etc/new.txt"] == "Read-only file system"
    assert report["/tmp/new.txt"] == "written"
    assert "CapEff:\t0000000000000000\n" in report["caps"] and "NoNewPrivs:\t1\n" in report["caps"]
    assert report["docker_sock"] is False
    assert "/workspace" in report["mounts"]
    assert not (workspace / "new.txt").exists()
    assert "no network" in result.isolation and "uid 65534" in result.isolation
    assert _leftovers(runner) == []


def test_timeouts_kill_and_remove(runner: DockerRunner) -> None:
    started = time.monotonic()
    result = runner.run(
        IsolatedCommand(
            argv=("python3", "-c", "import time; print('started', flush=True); time.sleep(600)"),
            read_only={},
            workdir="/tmp",
            limits=Limits(timeout_seconds=2),
        )
    )
    assert result.timed_out and result.exit_code is None
    assert "started" in result.stdout
    assert time.monotonic() - started < 30
    assert _leftovers(runner) == []


def test_output_is_capped_and_limits_hold(runner: DockerRunner) -> None:
    result = runner.run(
        IsolatedCommand(
            argv=("python3", "-c", "import sys; sys.stdout.write('x' * 300000)"),
            read_only={},
            workdir="/tmp",
            limits=Limits(max_output_bytes=1000),
        )
    )
    assert result.output_truncated and len(result.stdout) == 1000
    hog = runner.run(
        IsolatedCommand(
            argv=("python3", "-c", "x = []\nwhile True: x.append(bytearray(10**7))"),
            read_only={},
            workdir="/tmp",
            limits=Limits(memory_mb=64, timeout_seconds=30),
        )
    )
    assert hog.exit_code not in (0, None) and not hog.timed_out
    assert _leftovers(runner) == []


@pytest.mark.parametrize("source", ["/var/run/docker.sock", "/run", "/var/run", "/", "/no/such/path"])
def test_the_docker_socket_is_never_mounted(runner: DockerRunner, source: str) -> None:
    with pytest.raises(ValueError, match="refusing to mount"):
        runner.run(IsolatedCommand(argv=("true",), read_only={Path(source): "/inputs"}, workdir="/tmp"))


@pytest.mark.parametrize("network", ["internal", "host"])
@pytest.mark.parametrize(
    "stack",
    [
        {"kind": "python", "framework": "django", "databases": ["postgresql"], "entrypoint": "manage.py"},
        {"kind": "python", "framework": "fastapi", "databases": ["mongodb"], "entrypoint": "main:app"},
        {"kind": "node", "framework": "react", "databases": ["postgresql", "mongodb"], "entrypoint": "npm start"},
        {"kind": "dotnet", "framework": "", "databases": [], "entrypoint": "Api.csproj"},
    ],
    ids=["django-postgresql", "fastapi-mongodb", "react-both", "dotnet"],
)
def test_compose_accepts_every_generated_file(stack: dict, network: str, tmp_path: Path) -> None:
    """Stacks whose images cannot be pulled here are at least checked by compose itself."""
    import subprocess

    from sandboxes import compose
    from sandboxes.docker_backend import compose_command
    from tests.services import missing_service

    command = compose_command()
    if command is None:
        missing_service("neither `docker compose` nor `docker-compose` is installed")
    ports = {"app": 20001, "postgresql": 20002, "mongodb": 20003}
    plan = compose.compose_plan(
        sandbox_id=5, instance="test", stack=stack, workspace=str(tmp_path), ports=ports, network=network
    )
    path = tmp_path / "compose.json"
    path.write_text(plan.render())
    done = subprocess.run(
        [*command, "-p", "orket-check", "-f", str(path), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
