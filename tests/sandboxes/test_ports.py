"""Port leases: the unique port is the lock, so concurrent creations never share a port, and ports
come back when a sandbox is deleted."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.db import connection

from boards.models import Project
from sandboxes import ports, services
from sandboxes.errors import NoPortFree
from sandboxes.models import PortLease, Sandbox, SandboxSettings
from tests.sandboxes.sandbox_apps import write_app


@pytest.fixture
def local_sandboxes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Creation never talks to Docker; the local backend keeps these tests free of an engine.
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_creations_get_twenty_distinct_ports(
    local_sandboxes: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Exactly twenty ports: every collision must be resolved by trying the next one.
    monkeypatch.setenv("ORKET_SANDBOX_PORT_RANGE", "23100-23119")
    project = Project.objects.create(name="Race", slug="race")
    SandboxSettings.objects.create(project=project, max_sandboxes=0)
    workspace = write_app(tmp_path / "ws")
    barrier = threading.Barrier(20)
    created: list[int] = []
    failures: list[str] = []

    def create() -> None:
        try:
            barrier.wait()
            created.append(services.sandbox_create(project=project, workspace=workspace).pk)
        except Exception as error:
            failures.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert len(created) == 20
    leased = list(PortLease.objects.filter(sandbox_id__in=created).values_list("port", flat=True))
    assert sorted(leased) == list(range(23100, 23120))
    urls = {Sandbox.objects.get(pk=pk).urls["app"] for pk in created}
    assert len(urls) == 20

    with pytest.raises(NoPortFree):
        services.sandbox_create(project=project, workspace=workspace)
    assert Sandbox.objects.count() == 20  # the refused creation left no row behind


@pytest.mark.django_db
def test_ports_come_back_when_a_sandbox_is_deleted(
    local_sandboxes: None, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORKET_SANDBOX_PORT_RANGE", "23200-23200")
    workspace = write_app(tmp_path / "ws")
    first = services.sandbox_create(project=project, workspace=workspace)
    assert first.urls == {"app": "http://127.0.0.1:23200/"}
    with pytest.raises(NoPortFree, match="23200-23200"):
        services.sandbox_create(project=project, workspace=workspace)
    services.sandbox_delete(sandbox=first)
    assert services.sandbox_teardown(sandbox_id=first.pk).status == "deleted"
    assert PortLease.objects.count() == 0
    second = services.sandbox_create(project=project, workspace=workspace)
    assert second.urls == {"app": "http://127.0.0.1:23200/"}


@pytest.mark.django_db
def test_a_port_something_else_listens_on_is_skipped(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        monkeypatch.setenv("ORKET_SANDBOX_PORT_RANGE", f"{busy}-{busy}")
        sandbox = Sandbox.objects.create(project=project, name="held", workspace_path="/w", backend="local")
        with pytest.raises(NoPortFree):
            ports.lease_port(sandbox=sandbox, service="app")


@pytest.mark.parametrize("raw", ["abc", "30000", "80-90", "30000-20000", "1000-70000"])
def test_bad_port_ranges_are_refused(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORKET_SANDBOX_PORT_RANGE", raw)
    with pytest.raises(ValueError, match="ORKET_SANDBOX_PORT_RANGE"):
        ports.port_range()


def test_default_port_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORKET_SANDBOX_PORT_RANGE", raising=False)
    assert ports.port_range() == (20000, 20999)
