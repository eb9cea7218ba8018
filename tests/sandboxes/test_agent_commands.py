"""run_command: agent commands over a throwaway copy of the card's checkout, contained on every backend here.

Each hostile command runs on bubblewrap and on the Docker runner (a missing backend skips, or fails under
ORKET_REQUIRE_SERVICES=1): no connection reaches a listener on the host, fork bombs, memory hogs and endless
sleeps end within the limits, nothing is written outside the copy, the host's files cannot be read, and what
the command writes inside the checkout never reaches the card branch. The plain subprocess is refused unless
the operator allows it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from agents.conversation import result_text
from agents.tools import ToolContext, ToolFailed, execute_tool
from agents.workspaces import ProjectWorkspace, project_workspace_root
from boards import services as board_services
from boards.actors import Actor
from boards.models import Card, Project, ProjectRole
from sandboxes import commands
from sandboxes.commands import CommandOutcome, PlainCommandsRefused, command_run
from tests.sandboxes.docker_engine import docker_engine  # noqa: F401 - the session fixture
from tests.sandboxes.verification_support import Listener, assert_no_leftovers, files_under, require_bwrap

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=False)]

TIMEOUT_SECONDS = 6


@pytest.fixture(params=["bwrap", "docker"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("ORKET_COMMAND_TIMEOUT_SECONDS", str(TIMEOUT_SECONDS))
    monkeypatch.setenv("ORKET_COMMAND_MEMORY_MB", "256")
    monkeypatch.setenv("ORKET_COMMAND_MAX_PROCESSES", "32")
    monkeypatch.delenv("ORKET_AGENT_COMMANDS_ALLOW_PLAIN", raising=False)
    if request.param == "bwrap":
        require_bwrap()
        monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
        monkeypatch.delenv("ORKET_BWRAP", raising=False)
    else:
        engine = request.getfixturevalue("docker_engine")
        monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "docker")
        monkeypatch.setenv("ORKET_SANDBOX_RUNNER_IMAGE", engine.python_image)
        monkeypatch.setenv("ORKET_SANDBOX_PULL", "0")
    yield request.param


def checkout_of(card: Card) -> tuple[ProjectWorkspace, Path]:
    workspace = ProjectWorkspace(project_workspace_root(settings.DATA_DIR, card.project_id))
    workspace.ensure()
    return workspace, workspace.card_worktree(card.pk)


@pytest.fixture
def card(project: Project, member_of: Callable[..., Any]) -> Card:
    maintainer = member_of(project, ProjectRole.MAINTAINER)
    epic = board_services.epic_create(project=project, actor=Actor.for_user(maintainer), name="Commands")
    card = board_services.card_create(epic=epic, actor=Actor.for_user(maintainer), title="Run things")
    shutil.rmtree(project_workspace_root(settings.DATA_DIR, card.project_id), ignore_errors=True)
    workspace, checkout = checkout_of(card)
    (checkout / "app.py").write_text("VALUE = 1\n")
    workspace.commit_card(card.pk, seat="senior_developer", message="app")
    return card


def run_python(card: Card, code: str, **kwargs: Any) -> tuple[CommandOutcome, str]:
    """Run `code` with python3 -c, tagged so leftovers of this very command can be found."""
    tag = f"orket-test-{secrets.token_hex(6)}"
    outcome = command_run(card=card, argv=["python3", "-c", f"{code}\n# {tag}"], **kwargs)
    return outcome, tag


def assert_isolated(outcome: CommandOutcome, backend: str) -> None:
    assert outcome.backend == ("docker" if backend == "docker" else "local")
    assert outcome.isolation.startswith("docker container" if backend == "docker" else "bubblewrap")


def test_output_exit_code_and_live_callback(backend: str, card: Card) -> None:
    seen: list[tuple[float, str, str]] = []
    code = (
        "import sys, time\nprint('first line', flush=True)\nprint('to stderr', file=sys.stderr, flush=True)\n"
        "time.sleep(1.5)\nprint('second line')\nraise SystemExit(3)"
    )
    outcome, _ = run_python(card, code, on_output=lambda stream, text: seen.append((time.monotonic(), stream, text)))
    ended = time.monotonic()
    assert_isolated(outcome, backend)
    assert outcome.exit_code == 3 and not outcome.timed_out
    assert outcome.stdout == "first line\nsecond line\n"
    assert outcome.stderr == "to stderr\n"
    assert "".join(text for _, stream, text in seen if stream == "stdout") == "first line\nsecond line\n"
    assert "".join(text for _, stream, text in seen if stream == "stderr") == "to stderr\n"
    first = next(at for at, stream, text in seen if "first line" in text)
    assert ended - first > 1.0, "the first line was handed on only when the command ended"
    assert outcome.commit and outcome.clean


def test_output_is_cut_with_a_marker(backend: str, card: Card, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORKET_COMMAND_OUTPUT_BYTES", "2000")
    outcome, _ = run_python(card, "print('head'); print('x' * 50_000); print('the tail')")
    assert outcome.exit_code == 0
    assert outcome.stdout.startswith("head\n")
    assert outcome.stdout.rstrip().endswith("the tail")
    assert "bytes cut ...]" in outcome.stdout
    assert len(outcome.stdout.encode()) < 2200


def test_network(backend: str, card: Card) -> None:
    listener = Listener()
    try:
        connect = f"socket.create_connection(('127.0.0.1', {listener.port}), timeout=3).close()"
        code = f"import socket\n{connect}\nprint('connected')"
        outcome, _ = run_python(card, code)
    finally:
        listener.close()
    assert listener.accepted == 0
    assert outcome.exit_code != 0 and "connected" not in outcome.stdout


def test_fork_bomb(backend: str, card: Card) -> None:
    code = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)"
    started = time.monotonic()
    outcome, tag = run_python(card, code)
    assert outcome.timed_out and outcome.exit_code is None
    assert time.monotonic() - started < TIMEOUT_SECONDS + 20
    assert_no_leftovers(tag, wait=10.0)


def test_memory_hog(backend: str, card: Card) -> None:
    code = "hoard = []\nwhile True:\n    hoard.append(bytearray(64 * 1024 * 1024))"
    outcome, tag = run_python(card, code)
    assert not outcome.timed_out
    assert outcome.exit_code not in (0, None)
    assert "MemoryError" in outcome.stderr or "out of memory" in outcome.stderr or outcome.exit_code in (137, -9)
    assert_no_leftovers(tag)


def test_endless_sleep_is_killed_at_the_time_limit(backend: str, card: Card) -> None:
    code = (
        "import signal, time\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM})\ntime.sleep(10_000)"
    )
    started = time.monotonic()
    outcome, tag = run_python(card, code)
    elapsed = time.monotonic() - started
    assert outcome.timed_out and outcome.exit_code is None
    assert TIMEOUT_SECONDS - 1 < elapsed < TIMEOUT_SECONDS + 20
    assert "killed at the time limit" in outcome.for_agent()["content"]
    assert_no_leftovers(tag, wait=10.0)


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder on the host anyone may write to, holding a secret: only the isolation keeps the command out."""
    folder = Path(tempfile.mkdtemp(prefix="orket-outside-"))
    os.chmod(folder, 0o777)  # noqa: S103 - the point of the test
    (folder / "secret.txt").write_text("host secret")
    (folder / "secret.txt").chmod(0o644)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_writes_outside_the_checkout(backend: str, card: Card, outside: Path) -> None:
    _workspace, checkout = checkout_of(card)
    data_secret = Path(settings.DATA_DIR) / f"pwned-{secrets.token_hex(4)}.txt"
    targets = [
        str(outside / "pwned.txt"),
        str(checkout / "pwned.txt"),
        str(data_secret),
        "/etc/pwned",
        "/usr/pwned",
        "/orket/python/pwned.py",
        "/tmp/pwned.txt",
    ]
    code = (
        "import json, sys\nwritten = []\n"
        f"for path in {targets!r}:\n"
        "    try:\n        open(path, 'w').write('pwned')\n        written.append(path)\n"
        "    except OSError:\n        pass\nprint(json.dumps(written))"
    )
    outcome, _ = run_python(card, code)
    assert outcome.exit_code == 0, outcome.stderr
    assert not (outside / "pwned.txt").exists()
    assert not (checkout / "pwned.txt").exists()
    assert not data_secret.exists()
    written = set(__import__("json").loads(outcome.stdout))
    # The sandbox's own /tmp, and where the checkout's host path happens to resolve inside it, at most.
    assert written <= {"/tmp/pwned.txt", str(checkout / "pwned.txt")}, written


def test_reading_the_hosts_files(backend: str, card: Card, outside: Path) -> None:
    data_file = Path(settings.DATA_DIR) / f"secret-{secrets.token_hex(4)}.txt"
    data_file.write_text("data secret")
    data_file.chmod(0o644)
    # A link in the checkout (a cloned repository may hold one) must not lead out of it, nor be followed
    # when the copy is handed to the sandbox user.
    workspace, checkout = checkout_of(card)
    (checkout / "hostlink").symlink_to(outside)
    workspace.commit_card(card.pk, seat="senior_developer", message="a link")
    owner = (outside.stat().st_uid, (outside / "secret.txt").stat().st_uid)
    try:
        targets = [
            str(outside / "secret.txt"),
            "hostlink/secret.txt",
            str(data_file),
            "/etc/shadow",
            "/root/.bash_history",
        ]
        code = (
            "found = []\n"
            f"for path in {targets!r}:\n"
            "    try:\n        found.append(open(path).read())\n    except OSError:\n        pass\nprint(found)"
        )
        outcome, _ = run_python(card, code)
    finally:
        data_file.unlink()
    assert outcome.exit_code == 0, outcome.stderr
    assert "secret" not in outcome.stdout, outcome.stdout
    assert outcome.stdout.strip() == "[]"
    assert (outside.stat().st_uid, (outside / "secret.txt").stat().st_uid) == owner


def test_writes_inside_the_checkout_do_not_reach_the_card_branch(backend: str, card: Card) -> None:
    workspace, checkout = checkout_of(card)
    before = files_under(checkout)
    head = commands.checkout_state(checkout)[0]
    code = (
        "import os\nopen('app.py', 'w').write('VALUE = 2\\n')\nopen('new.py', 'w').write('x = 1\\n')\n"
        "os.makedirs('made', exist_ok=True)\nopen('made/file', 'w').write('y')\nprint(open('app.py').read())"
    )
    outcome, _ = run_python(card, code)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stdout.strip() == "VALUE = 2"  # the copy was writable
    assert files_under(checkout) == before
    assert (checkout / "app.py").read_text() == "VALUE = 1\n"
    assert commands.checkout_state(checkout) == (head, True)
    assert workspace.commit_card(card.pk, seat="senior_developer", message="nothing") is None


def test_a_named_pipe_in_the_checkout_is_left_out_of_the_copy(card: Card, monkeypatch: pytest.MonkeyPatch) -> None:
    require_bwrap()
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    monkeypatch.delenv("ORKET_BWRAP", raising=False)
    _workspace, checkout = checkout_of(card)
    os.mkfifo(checkout / "pipe")  # copying it would block until someone writes to it
    outcome = command_run(card=card, argv=["ls"])
    assert outcome.exit_code == 0 and outcome.stdout.split() == ["app.py"]


def test_plain_subprocess_is_refused_without_the_setting(card: Card, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    monkeypatch.setenv("ORKET_BWRAP", "0")
    monkeypatch.delenv("ORKET_AGENT_COMMANDS_ALLOW_PLAIN", raising=False)
    with pytest.raises(PlainCommandsRefused) as refused:
        command_run(card=card, argv=["python3", "-c", "print('ran')"])
    assert refused.value.code == "plain_commands_refused"
    assert "ORKET_AGENT_COMMANDS_ALLOW_PLAIN=1" in refused.value.message

    # Through the tool, the agent reads why as the call's observation.
    context = ToolContext(
        card=card, actor=Actor.orket("t"), workspace=checkout_of(card)[1], seats=[], verification=lambda c: {}
    )
    with pytest.raises(ToolFailed) as failed:
        execute_tool(context, "run_command", {"argv": ["python3", "-c", "print('ran')"]})
    assert failed.value.rule == "plain_commands_refused" and not failed.value.governance
    assert "FAILED (plain_commands_refused)" in result_text(
        {"decision": "failed", "rule": failed.value.rule, "message": failed.value.message}
    )

    monkeypatch.setenv("ORKET_AGENT_COMMANDS_ALLOW_PLAIN", "1")
    outcome = command_run(card=card, argv=["python3", "-c", "print('ran')"])
    assert outcome.stdout == "ran\n" and outcome.isolation.startswith("plain subprocess")


def test_argv_is_a_list_never_a_shell_line(card: Card, monkeypatch: pytest.MonkeyPatch) -> None:
    require_bwrap()
    monkeypatch.setenv("ORKET_SANDBOX_BACKEND", "local")
    monkeypatch.delenv("ORKET_BWRAP", raising=False)
    with pytest.raises(commands.InvalidInput):
        command_run(card=card, argv="echo hi; rm -rf /")  # type: ignore[arg-type]
    outcome = command_run(card=card, argv=["echo", "hi; touch /tmp/x"])
    assert outcome.stdout == "hi; touch /tmp/x\n"


def test_run_tests_counts_a_python_checkout(backend: str, card: Card) -> None:
    """The pytest Orket offers works in each isolation (the Docker test image has no pytest of its own)."""
    workspace, checkout = checkout_of(card)
    (checkout / "test_app.py").write_text(
        "from app import VALUE\n\n\ndef test_value():\n    assert VALUE == 1\n\n\n"
        "def test_wrong():\n    assert VALUE == 2\n"
    )
    workspace.commit_card(card.pk, seat="senior_developer", message="tests")
    seen: list[str] = []
    summary = commands.card_tests_run(card=card, requested_by="t", on_output=lambda stream, text: seen.append(text))
    assert (summary["tool"], summary["status"], summary["passed"], summary["failed"]) == ("pytest", "failed", 1, 1)
    assert "1 failed, 1 passed" in summary["summary"]
    assert "1 failed, 1 passed" in "".join(seen)
    assert_isolated_summary(summary, backend)


def assert_isolated_summary(summary: dict[str, Any], backend: str) -> None:
    assert summary["backend"] == ("docker" if backend == "docker" else "local")
