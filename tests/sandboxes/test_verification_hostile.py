"""Hostile agent code under verification: every attack ends in a clear failed or timed-out run, and the host
is unaffected (no connection received, no file written outside, no process left behind).

Run on the local backend with bubblewrap and on the Docker runner (skipped without an engine unless
ORKET_REQUIRE_SERVICES=1). Attacks that a plain subprocess can contain (fork bombs, memory, sleeping) run
there too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, Project, ProjectRole
from sandboxes import verification
from sandboxes.models import VerificationRun
from tests.sandboxes.docker_engine import docker_engine  # noqa: F401 - the session fixture
from tests.sandboxes.verification_support import Listener, assert_no_leftovers, files_under, require_bwrap

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=False)]

TIMEOUT_SECONDS = 6

HOSTILE = """
import os, signal, socket, time

def verify_network(target):
    host, port = target
    socket.create_connection((host, port), timeout=3).close()
    return "connected"

def verify_write_outside(paths):
    written = []
    for path in paths:
        try:
            with open(path, "w") as handle:
                handle.write("pwned")
            written.append(path)
        except OSError:
            pass
    return written

def verify_fork_bomb(_):
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)

def verify_allocate(_):
    hoard = []
    while True:
        hoard.append(bytearray(64 * 1024 * 1024))

def verify_sleep_forever(_):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(10_000)
    return "woke"
"""

EXPECTED_IF_ESCAPED = {
    "network": "connected",
    "fork_bomb": "escaped",
    "allocate": "escaped",
    "sleep_forever": "woke",
}


@pytest.fixture(params=["bwrap", "docker", "plain"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("ORKET_VERIFICATION_TIMEOUT", str(TIMEOUT_SECONDS))
    monkeypatch.setenv("ORKET_VERIFICATION_MEMORY_MB", "256")
    monkeypatch.setenv("ORKET_VERIFICATION_MAX_PROCESSES", "32")
    if request.param == "bwrap":
        require_bwrap()
        monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
        monkeypatch.delenv("ORKET_BWRAP", raising=False)
    elif request.param == "plain":
        monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
        monkeypatch.setenv("ORKET_BWRAP", "0")
    else:
        engine = request.getfixturevalue("docker_engine")
        monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "docker")
        monkeypatch.setenv("ORKET_SANDBOX_RUNNER_IMAGE", engine.python_image)
        monkeypatch.setenv("ORKET_SANDBOX_PULL", "0")
    yield request.param
    # Only what this test process started: other test runs may be verifying at the same time.
    assert_no_leftovers(verification.RUNNER_TAG, wait=10.0)
    if request.param == "docker":
        labelled = engine.client.containers.list(all=True, filters={"label": "orket.verification"})
        left = [c for c in labelled if verification.RUNNER_TAG in (c.attrs.get("Config", {}).get("Cmd") or [])]
        assert left == [], f"verification containers left behind: {left}"


@pytest.fixture
def card(project: Project, member_of: Callable[..., Any]) -> Card:
    maintainer = member_of(project, ProjectRole.MAINTAINER)
    epic = board_services.epic_create(project=project, actor=Actor.for_user(maintainer), name="Hostile")
    card = board_services.card_create(epic=epic, actor=Actor.for_user(maintainer), title="Attack")
    root = verification.workspaces_root() / f"project-{card.project_id}" / "cards" / str(card.pk)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "verify.py").write_text(HOSTILE)
    os.chmod(root, 0o755)  # noqa: S103 - readable by the sandbox user, as agents' worktrees are
    card.maintainer = maintainer  # type: ignore[attr-defined]
    return card


def run_attack(card: Card, scenario: dict[str, Any]) -> VerificationRun:
    verification.fixture_upload(
        card=card,
        raw=json.dumps({"scenarios": [scenario], "timeout_seconds": 60}).encode(),
        name=scenario["id"],
        user=card.maintainer,  # type: ignore[attr-defined]
    )
    run = verification.verification_run(run_id=verification.verification_start(card=card, requested_by="t").pk)
    assert run.status in ("failed", "timed_out"), (run.status, run.results, run.output)
    assert Card.objects.get(pk=card.pk).last_verification == "failed"
    assert run.isolation
    expected_backend = "docker" if os.environ["ORKET_SANDBOX_BACKEND"] == "docker" else "local"
    assert run.backend == expected_backend, run.isolation
    if os.environ.get("ORKET_BWRAP") == "0":
        assert run.isolation.startswith("plain subprocess")
    elif expected_backend == "local":
        assert run.isolation.startswith("bubblewrap")
    return run


def test_network(backend: str, card: Card) -> None:
    if backend == "plain":
        pytest.skip("a plain subprocess has the host's network; it says so in its isolation text")
    listener = Listener()
    try:
        run = run_attack(card, {"id": "network", "input": ["127.0.0.1", listener.port], "expected": "connected"})
    finally:
        listener.close()
    assert listener.accepted == 0
    assert run.results[0]["status"] == "error"


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder on the host that anyone may write to: only the isolation keeps the code out of it."""
    folder = Path(tempfile.mkdtemp(prefix="orket-outside-"))
    os.chmod(folder, 0o777)  # noqa: S103 - the point of the test
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_write_outside_the_workspace(backend: str, card: Card, outside: Path) -> None:
    if backend == "plain":
        pytest.skip("a plain subprocess sees the host's files (as uid 65534 when Orket runs as root)")
    workspace = verification.card_workspace(card)
    assert workspace is not None
    before = files_under(workspace)
    fixtures_before = files_under(verification.fixtures_root())
    targets = [
        str(outside / "pwned.txt"),
        str(workspace / "pwned.txt"),
        "/workspace/pwned.txt",
        "/orket/verify_runner.py",
        str(verification.fixtures_root() / "pwned.json"),
        "/tmp/pwned.txt",
    ]
    run = run_attack(card, {"id": "write_outside", "input": targets, "expected": targets})
    assert run.results[0]["status"] == "failed"
    assert not (outside / "pwned.txt").exists()
    assert files_under(workspace) == before
    assert not [name for name in files_under(verification.fixtures_root()) - fixtures_before if "pwned" in name]
    assert not (verification.fixtures_root() / "pwned.json").exists()
    written = run.results[0]["output"]
    assert set(written) <= {"/tmp/pwned.txt"}  # only the private /tmp of the sandbox


def test_fork_bomb(backend: str, card: Card) -> None:
    run = run_attack(card, {"id": "fork_bomb", "input": None, "expected": "escaped"})
    assert run.status == "timed_out"
    assert run.duration_ms < (TIMEOUT_SECONDS + 15) * 1000


def test_allocate_without_bound(backend: str, card: Card) -> None:
    run = run_attack(card, {"id": "allocate", "input": None, "expected": "escaped"})
    result = run.results[0]
    assert run.status == "failed" and result["status"] == "error"
    assert "memory" in (result.get("error") or "").lower() or "before it reported" in run.output


def test_sleep_forever(backend: str, card: Card) -> None:
    run = run_attack(card, {"id": "sleep_forever", "input": None, "expected": "woke"})
    assert run.status == "timed_out"
    assert "time limit" in run.output
    assert run.results[0]["status"] == "error" and "stopped" in run.results[0]["error"]
