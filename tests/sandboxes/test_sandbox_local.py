"""Sandboxes on the local-process backend (no Docker): bubblewrap when installed, else a plain
subprocess; the row says which. The app answers on 127.0.0.1; stop and delete end every process."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from sandboxes import local_sandbox, services
from sandboxes.models import PortLease, Sandbox, SandboxStatus
from tests.sandboxes.sandbox_apps import write_app
from tests.services import missing_service

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def _use_local_backend(kind: str, monkeypatch: pytest.MonkeyPatch, settings, tmp_path: Path) -> str:
    if kind == "bwrap" and shutil.which("bwrap") is None:
        missing_service("bubblewrap is not installed (apt-get install bubblewrap)")
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    monkeypatch.setenv("ORKET_SANDBOX_HEALTH_TIMEOUT", "30")
    monkeypatch.setenv("ORKET_BWRAP", "1" if kind == "bwrap" else "0")
    settings.DATA_DIR = tmp_path / "data"
    return kind


@pytest.fixture(params=["bwrap", "plain"])
def local_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, settings, tmp_path: Path) -> str:
    return _use_local_backend(str(request.param), monkeypatch, settings, tmp_path)


@pytest.fixture
def bwrap_backend(monkeypatch: pytest.MonkeyPatch, settings, tmp_path: Path) -> str:
    """Only bubblewrap makes the workspace read-only, so these tests have no plain variant."""
    return _use_local_backend("bwrap", monkeypatch, settings, tmp_path)


def _pids_in_group(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pid:
                    found.append(int(entry.name))
            except ProcessLookupError:
                continue
    return found


def test_local_sandbox_lifecycle(local_backend: str, project, tmp_path: Path) -> None:
    sandbox = services.sandbox_create(project=project, workspace=write_app(tmp_path / "ws"))
    assert sandbox.backend == "local"
    try:
        sandbox = services.sandbox_provision(sandbox_id=sandbox.pk)
        assert sandbox.status == SandboxStatus.RUNNING, sandbox.last_error
        if local_backend == "bwrap":
            assert sandbox.isolation.startswith("bubblewrap: read-only workspace")
        else:
            assert "plain subprocess: no filesystem or network isolation" in sandbox.isolation
        answer = httpx.get(sandbox.urls["app"], timeout=5)
        assert answer.text == "hello from the sandbox"
        folder = services.state_dir(sandbox)
        pid = local_sandbox.pid_of(folder)
        assert pid is not None and _pids_in_group(pid)
        assert "sandbox app listening on 127.0.0.1" in local_sandbox.log_tail(folder, 50)
        assert services.sandbox_health_check(sandbox_id=sandbox.pk).status == SandboxStatus.RUNNING

        services.sandbox_stop(sandbox=sandbox)
        assert services.sandbox_halt(sandbox_id=sandbox.pk).status == SandboxStatus.STOPPED
        assert _pids_in_group(pid) == []
        with pytest.raises(httpx.HTTPError):
            httpx.get(sandbox.urls["app"], timeout=2)

        assert services.sandbox_start(sandbox=sandbox).status == SandboxStatus.CREATING
        assert services.sandbox_provision(sandbox_id=sandbox.pk).status == SandboxStatus.RUNNING
        assert httpx.get(sandbox.urls["app"], timeout=5).text == "hello from the sandbox"
    finally:
        services.sandbox_delete(sandbox=Sandbox.objects.get(pk=sandbox.pk))
        sandbox = services.sandbox_teardown(sandbox_id=sandbox.pk)
    assert sandbox.status == SandboxStatus.DELETED
    assert PortLease.objects.filter(sandbox=sandbox).count() == 0


def test_local_sandbox_cannot_write_its_workspace(bwrap_backend: str, project, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "ws")
    app = (folder / "app.py").read_text()
    (folder / "app.py").write_text("open('/workspace/planted.txt', 'w').write('x')\n" + app)
    sandbox = services.sandbox_create(project=project, workspace=folder)
    try:
        sandbox = services.sandbox_provision(sandbox_id=sandbox.pk)
        assert sandbox.status == SandboxStatus.UNHEALTHY
        assert "Read-only file system" in sandbox.last_error
        assert not (folder / "planted.txt").exists()
    finally:
        services.sandbox_teardown(sandbox_id=sandbox.pk)


def test_cleanup_stops_processes_no_row_accounts_for(local_backend: str, project, tmp_path: Path) -> None:
    sandbox = services.sandbox_create(project=project, workspace=write_app(tmp_path / "ws"))
    sandbox = services.sandbox_provision(sandbox_id=sandbox.pk)
    assert sandbox.status == SandboxStatus.RUNNING, sandbox.last_error
    pid = local_sandbox.pid_of(services.state_dir(sandbox))
    Sandbox.objects.filter(pk=sandbox.pk).update(status=SandboxStatus.DELETED)  # as if the row was lost
    try:
        assert services.sandboxes_cleanup()["orphan_processes"] == 1
        assert pid is not None and _pids_in_group(pid) == []
    finally:
        local_sandbox.stop(services.state_dir(sandbox))


@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_starts_and_deletes_it(local_backend: str, tmp_path: Path) -> None:
    """The real path: the create commits, the task goes through the broker, a worker provisions it."""
    import time

    from boards.models import Project
    from tests.agents.engine_support import worker_thread

    project = Project.objects.create(name="Queued", slug="queued")

    def wait(sandbox_id: int, status: str) -> Sandbox:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sandbox = Sandbox.objects.get(pk=sandbox_id)
            if sandbox.status == status:
                return sandbox
            time.sleep(0.1)
        raise AssertionError(f"sandbox {sandbox_id} is {Sandbox.objects.get(pk=sandbox_id).status}, not {status}")

    with worker_thread():
        sandbox = services.sandbox_create(project=project, workspace=write_app(tmp_path / "ws"))
        sandbox = wait(sandbox.pk, SandboxStatus.RUNNING)
        assert httpx.get(sandbox.urls["app"], timeout=5).text == "hello from the sandbox"
        services.sandbox_delete(sandbox=sandbox)
        wait(sandbox.pk, SandboxStatus.DELETED)
    assert PortLease.objects.filter(sandbox=sandbox).count() == 0


def test_a_start_whose_worker_died_fails_and_lets_go(local_backend: str, project, tmp_path: Path) -> None:
    from datetime import timedelta

    from django.utils import timezone

    sandbox = services.sandbox_create(project=project, workspace=write_app(tmp_path / "ws"))
    Sandbox.objects.filter(pk=sandbox.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    assert services.sandboxes_cleanup()["stale_starts"] == 1
    sandbox.refresh_from_db()
    assert sandbox.status == SandboxStatus.FAILED and "worker starting this sandbox stopped" in sandbox.last_error
    assert PortLease.objects.filter(sandbox=sandbox).count() == 0


def test_a_stop_whose_worker_died_ends_stopped(local_backend: str, project, tmp_path: Path) -> None:
    from datetime import timedelta

    from django.utils import timezone

    sandbox = services.sandbox_create(project=project, workspace=write_app(tmp_path / "ws"))
    assert services.sandbox_provision(sandbox_id=sandbox.pk).status == SandboxStatus.RUNNING
    services.sandbox_delete(sandbox=sandbox)
    Sandbox.objects.filter(pk=sandbox.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    try:
        assert services.sandboxes_cleanup()["stuck_stops"] == 1
        sandbox.refresh_from_db()
        assert sandbox.status == SandboxStatus.STOPPED and "delete it again" in sandbox.last_error
        assert not local_sandbox.alive(services.state_dir(sandbox))
    finally:
        services.sandbox_delete(sandbox=sandbox)
        services.sandbox_teardown(sandbox_id=sandbox.pk)
