"""Sandboxes on a real Docker engine: a small generated app goes creating -> running, answers on
127.0.0.1, shows its output in the logs; stop and delete remove every container and release the
ports; the periodic clean-up removes a planted orphan. The engine runs without a bridge, so these
use host networking bound to 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from sandboxes import services
from sandboxes.docker_backend import SANDBOX_LABEL, containers_of
from sandboxes.models import PortLease, Sandbox, SandboxSettings, SandboxStatus
from tests.sandboxes.docker_engine import DockerEngine, docker_engine  # noqa: F401  (the fixture)
from tests.sandboxes.sandbox_apps import APP, write_app

__all__ = ["APP", "write_app"]  # other tests import the app from here

pytestmark = [pytest.mark.slow, pytest.mark.services]


@pytest.fixture
def docker_sandboxes(docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch) -> DockerEngine:  # noqa: F811
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "docker")
    monkeypatch.setenv("ORKET_SANDBOX_NETWORK", "host")
    monkeypatch.setenv("ORKET_SANDBOX_IMAGE_PYTHON", docker_engine.python_image)
    monkeypatch.setenv("ORKET_SANDBOX_HEALTH_TIMEOUT", "60")
    return docker_engine


def test_sandbox_lifecycle_on_docker(docker_sandboxes: DockerEngine, project, make_user, tmp_path: Path) -> None:
    engine = docker_sandboxes.client
    user = make_user()
    started = time.monotonic()
    sandbox = services.sandbox_create(project=project, workspace=write_app(tmp_path / "ws"), user=user)
    assert sandbox.status == SandboxStatus.CREATING and sandbox.backend == "docker"
    assert "host network" in sandbox.isolation
    port = PortLease.objects.get(sandbox=sandbox, service="app").port
    assert sandbox.urls == {"app": f"http://127.0.0.1:{port}/"}
    compose_file = services.state_dir(sandbox) / services.COMPOSE_FILE
    assert compose_file.stat().st_mode & 0o077 == 0  # it holds the generated secrets

    try:
        sandbox = services.sandbox_provision(sandbox_id=sandbox.pk)
        assert sandbox.status == SandboxStatus.RUNNING, sandbox.last_error
        assert sandbox.health_checks_passed >= 1 and sandbox.last_health_check_at is not None
        print(f"healthy after {time.monotonic() - started:.1f} s")

        answer = httpx.get(sandbox.urls["app"], timeout=5)
        assert answer.status_code == 200 and answer.text == "hello from the sandbox"

        (container,) = containers_of(engine, sandbox.pk, services.instance_id())
        attrs = container.attrs
        assert attrs["Config"]["User"] == "65534:65534"
        assert attrs["HostConfig"]["ReadonlyRootfs"] is True
        assert attrs["HostConfig"]["CapDrop"] == ["ALL"]
        assert "no-new-privileges:true" in attrs["HostConfig"]["SecurityOpt"]
        assert attrs["HostConfig"]["Memory"] > 0 and attrs["HostConfig"]["PidsLimit"] > 0
        assert attrs["HostConfig"]["NetworkMode"] == "host"
        mounts = attrs["Mounts"]
        assert [(m["Destination"], m["RW"]) for m in mounts] == [("/workspace", False)]
        assert all("docker.sock" not in m["Source"] for m in mounts)

        assert services.sandbox_health_check(sandbox_id=sandbox.pk).health_checks_passed >= 2
        logs = services.sandbox_logs_capture(sandbox_id=sandbox.pk)
        assert "sandbox app listening on 127.0.0.1" in logs
        assert '"GET / HTTP/1.1" 200' in logs

        sandbox = services.sandbox_stop(sandbox=sandbox, user=user)
        assert sandbox.status == SandboxStatus.STOPPING
        sandbox = services.sandbox_halt(sandbox_id=sandbox.pk)
        assert sandbox.status == SandboxStatus.STOPPED
        assert [c.status for c in containers_of(engine, sandbox.pk, services.instance_id())] == ["exited"]
        with pytest.raises(httpx.HTTPError):
            httpx.get(sandbox.urls["app"], timeout=2)
        assert PortLease.objects.filter(sandbox=sandbox).count() == 1  # a stopped sandbox keeps its port

        services.sandbox_start(sandbox=sandbox, user=user)
        sandbox = services.sandbox_provision(sandbox_id=sandbox.pk)
        assert sandbox.status == SandboxStatus.RUNNING, sandbox.last_error
        assert httpx.get(sandbox.urls["app"], timeout=5).text == "hello from the sandbox"
        assert [c.id for c in containers_of(engine, sandbox.pk, services.instance_id())] == [container.id]
    finally:
        services.sandbox_delete(sandbox=Sandbox.objects.get(pk=sandbox.pk), user=user)
        sandbox = services.sandbox_teardown(sandbox_id=sandbox.pk)

    assert sandbox.status == SandboxStatus.DELETED, sandbox.last_error
    assert containers_of(engine, sandbox.pk, services.instance_id()) == []
    assert (
        engine.volumes.list(
            filters={"label": [f"{SANDBOX_LABEL}={sandbox.pk}", f"orket.instance={services.instance_id()}"]}
        )
        == []
    )
    assert PortLease.objects.filter(sandbox=sandbox).count() == 0
    assert not compose_file.exists()
    assert "sandbox app listening" in Path(services.state_dir(sandbox) / services.LOGS_FILE).read_text()


def test_a_crashing_app_is_unhealthy_with_its_output(docker_sandboxes: DockerEngine, project, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "ws")
    (folder / "app.py").write_text("import sys\nprint('boom: no database configured', flush=True)\nsys.exit(3)\n")
    (folder / "app.py").chmod(0o644)
    sandbox = services.sandbox_create(project=project, workspace=folder)
    try:
        sandbox = services.sandbox_provision(sandbox_id=sandbox.pk)
        assert sandbox.status == SandboxStatus.UNHEALTHY
        assert "exited (3)" in sandbox.last_error
        assert "boom: no database configured" in (services.state_dir(sandbox) / services.LOGS_FILE).read_text()
    finally:
        services.sandbox_teardown(sandbox_id=sandbox.pk)
    assert containers_of(docker_sandboxes.client, sandbox.pk, services.instance_id()) == []


def test_an_image_that_is_missing_fails_plainly(
    docker_sandboxes: DockerEngine, project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORKET_SANDBOX_IMAGE_PYTHON", "orket-test/no-such-image:never")
    sandbox = services.sandbox_create(project=project, workspace=write_app(tmp_path / "ws"))
    sandbox = services.sandbox_provision(sandbox_id=sandbox.pk)
    assert sandbox.status == SandboxStatus.FAILED
    assert "compose up failed" in sandbox.last_error
    assert PortLease.objects.filter(sandbox=sandbox).count() == 0
    assert containers_of(docker_sandboxes.client, sandbox.pk, services.instance_id()) == []


def test_cleanup_removes_orphans_and_expired_sandboxes(docker_sandboxes: DockerEngine, project, tmp_path: Path) -> None:
    engine = docker_sandboxes.client
    orphan = engine.containers.run(
        docker_sandboxes.busybox_image,
        ["sleep", "300"],
        detach=True,
        network_mode="none",
        labels={SANDBOX_LABEL: "999999", "orket.instance": services.instance_id()},
    )
    elsewhere = engine.containers.run(  # another installation's sandbox on the same engine
        docker_sandboxes.busybox_image,
        ["sleep", "300"],
        detach=True,
        network_mode="none",
        labels={SANDBOX_LABEL: "999999", "orket.instance": "another-installation"},
    )
    unlabelled = engine.containers.run(
        docker_sandboxes.busybox_image, ["sleep", "300"], detach=True, network_mode="none"
    )
    SandboxSettings.objects.create(project=project, time_to_live_hours=1)
    live = services.sandbox_create(project=project, workspace=write_app(tmp_path / "live"))
    expired = services.sandbox_create(project=project, workspace=write_app(tmp_path / "old"))
    try:
        for sandbox in (live, expired):
            assert services.sandbox_provision(sandbox_id=sandbox.pk).status == SandboxStatus.RUNNING
        Sandbox.objects.filter(pk=expired.pk).update(expires_at=expired.created_at)

        outcome = services.sandboxes_cleanup()

        assert outcome["expired"] == 1 and outcome["orphan_containers"] == 1
        assert [c.id for c in engine.containers.list(all=True, filters={"label": f"{SANDBOX_LABEL}=999999"})] == [
            elsewhere.id
        ]
        assert Sandbox.objects.get(pk=expired.pk).status == SandboxStatus.DELETED
        assert containers_of(engine, expired.pk, services.instance_id()) == []
        assert len(containers_of(engine, live.pk, services.instance_id())) == 1  # a live sandbox is left alone
        unlabelled.reload()
        assert unlabelled.status == "running"  # only what carries Orket's label is touched
    finally:
        unlabelled.remove(force=True)
        elsewhere.remove(force=True)
        orphan.remove(force=True) if engine.containers.list(all=True, filters={"id": orphan.id}) else None
        for sandbox in (live, expired):
            services.sandbox_teardown(sandbox_id=sandbox.pk)


def test_internal_network_publishes_only_on_loopback(
    docker_sandboxes: DockerEngine, project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default networking: a private `internal: true` network, the app's port published on
    127.0.0.1 only (user-defined bridge networks work on the test engine; only docker0 is off)."""
    monkeypatch.setenv("ORKET_SANDBOX_NETWORK", "internal")
    engine = docker_sandboxes.client
    sandbox = services.sandbox_create(project=project, workspace=write_app(tmp_path / "ws"))
    assert "private internal network" in sandbox.isolation
    try:
        sandbox = services.sandbox_provision(sandbox_id=sandbox.pk)
        assert sandbox.status == SandboxStatus.RUNNING, sandbox.last_error
        assert httpx.get(sandbox.urls["app"], timeout=5).text == "hello from the sandbox"
        (container,) = containers_of(engine, sandbox.pk, services.instance_id())
        port = PortLease.objects.get(sandbox=sandbox).port
        assert container.attrs["HostConfig"]["PortBindings"] == {
            "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        }
        networks = engine.networks.list(
            filters={"label": [f"{SANDBOX_LABEL}={sandbox.pk}", f"orket.instance={services.instance_id()}"]}
        )
        by_name = {n.name.rsplit("_", 1)[-1]: n.attrs for n in networks}
        assert by_name["internal"]["Internal"] is True and by_name["edge"]["Internal"] is False
    finally:
        services.sandbox_teardown(sandbox_id=sandbox.pk)
    assert (
        engine.networks.list(
            filters={"label": [f"{SANDBOX_LABEL}={sandbox.pk}", f"orket.instance={services.instance_id()}"]}
        )
        == []
    )
    assert containers_of(engine, sandbox.pk, services.instance_id()) == []
