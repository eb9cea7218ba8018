"""Commands agents run in a card's checkout (`run_command`) and the card's own tests (`run_tests`).

    outcome = command_run(card=card, argv=["python3", "-c", "print(1)"], on_output=print_live)
    summary = card_tests_run(card=card, requested_by="senior_developer", on_output=print_live)

A command is an argument list, never a shell line. It runs with the verification isolation
(`verification.choose_runner`: a Docker container where an engine answers, else bubblewrap) over a
throwaway copy of the card's checkout mounted read-write at /workspace: no network, memory, process,
CPU and time limits, uid 65534; whatever it writes is discarded with the copy, so only the file tools
change the card branch. The plain-subprocess fallback (no bubblewrap, no engine) is refused unless the
operator sets ORKET_AGENT_COMMANDS_ALLOW_PLAIN=1. Orket's own pytest is offered read-only on PYTHONPATH
(/orket/python) so Python checkouts can be tested in images without it (ORKET_COMMAND_OFFER_PYTEST=0
turns that off).

`on_output(stream, text)` (stream "stdout" or "stderr") is called from a reader thread as output is
produced, for live streaming; it is never called inside a database transaction.

A `run_tests` run of the whole suite is recorded as a VerificationRun of kind `card_tests`. When it
ran on a clean checkout whose commit did not change during the run, and the project does not require a
human-owned fixture (SandboxSettings.require_human_fixture), its outcome becomes the card's latest
verification (passed or failed) for the done gate; a later commit of the card clears it (agents.steps).
"""

from __future__ import annotations

import compileall
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from boards import services as board_services
from boards.actors import Actor
from boards.errors import IllegalState, InvalidInput
from boards.models import Card
from sandboxes.isolation import IsolatedCommand, IsolatedRunner, Limits, OutputCallback
from sandboxes.local_backend import NOBODY, LocalProcessRunner
from sandboxes.models import SandboxSettings, VerificationKind, VerificationRun, VerificationStatus
from sandboxes.testsuite import BadSuiteArguments, SuiteCounts, cut_output, parse_counts, suite_command
from sandboxes.verification import MAX_STORED_OUTPUT, VerificationUnavailable, card_workspace, choose_runner

log = logging.getLogger(__name__)

WORKSPACE = "/workspace"
PYTHON_TOOLS = "/orket/python"
PYTEST_PACKAGES = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py")
MAX_ARGV = 64
MAX_ARG_CHARS = 4_000
MAX_COPY_BYTES = 500 * 1024 * 1024
COPY_SKIP = frozenset({".git"})
SANDBOX_ENV = {
    "HOME": "/tmp",  # noqa: S108 - the sandbox's private /tmp
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}
RUNNER_KEEPS_BYTES = 4_000_000  # per stream; the runner keeps the head, so the shown tail is real up to this size


class CommandRefused(IllegalState):
    code = "command_refused"


class PlainCommandsRefused(CommandRefused):
    code = "plain_commands_refused"


class CommandNotRun(CommandRefused):
    code = "command_not_run"


@dataclass(frozen=True)
class CommandOutcome:
    argv: list[str]
    exit_code: int | None
    timed_out: bool
    stdout: str
    stderr: str
    duration_ms: int
    backend: str
    isolation: str
    commit: str  # the checkout's HEAD when the command started ("" when unknown)
    clean: bool  # the checkout had no uncommitted changes then

    def for_agent(self) -> dict[str, Any]:
        header = {key: value for key, value in asdict(self).items() if key not in ("stdout", "stderr", "commit")}
        header["content"] = self.content()
        return header

    def content(self) -> str:
        state = "killed at the time limit" if self.timed_out else f"exit code {self.exit_code}"
        return f"{state}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


# -- settings ------------------------------------------------------------------------------------------------------


def _setting(name: str, default: str) -> str:
    return str(getattr(settings, name, None) or os.environ.get(name, "") or default)


def _flag(name: str, default: bool) -> bool:
    return _setting(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def command_limits() -> Limits:
    return Limits(
        timeout_seconds=float(_setting("ORKET_COMMAND_TIMEOUT_SECONDS", "120")),
        memory_mb=int(_setting("ORKET_COMMAND_MEMORY_MB", "1024")),
        max_processes=int(_setting("ORKET_COMMAND_MAX_PROCESSES", "128")),
        cpus=float(_setting("ORKET_COMMAND_CPUS", "1")),
        max_output_bytes=max(output_limit() * 8, RUNNER_KEEPS_BYTES),
    )


def output_limit() -> int:
    """Bytes of each of stdout and stderr shown to the agent (head and tail, the middle cut)."""
    return int(_setting("ORKET_COMMAND_OUTPUT_BYTES", "10000"))


def plain_allowed() -> bool:
    return _flag("ORKET_AGENT_COMMANDS_ALLOW_PLAIN", False)


def require_human_fixture(card: Card) -> bool:
    found = SandboxSettings.objects.filter(project_id=card.project_id).values_list("require_human_fixture", flat=True)
    return bool(found.first())


# -- running -------------------------------------------------------------------------------------------------------


def check_argv(argv: Any) -> list[str]:
    if not isinstance(argv, list) or not argv:
        raise InvalidInput("argv is a non-empty list of strings: the program, then its arguments.", code="bad_argv")
    if len(argv) > MAX_ARGV:
        raise InvalidInput(f"argv has at most {MAX_ARGV} items.", code="bad_argv")
    for part in argv:
        if not isinstance(part, str) or "\0" in part or len(part) > MAX_ARG_CHARS:
            raise InvalidInput(f"Each argv item is a string of at most {MAX_ARG_CHARS} characters.", code="bad_argv")
    if not argv[0].strip():
        raise InvalidInput("argv[0], the program, is empty.", code="bad_argv")
    return list(argv)


def isolating_runner() -> IsolatedRunner:
    """The verification runner, unless it is the plain subprocess and the operator did not allow that."""
    try:
        runner = choose_runner()
    except VerificationUnavailable as problem:
        raise CommandRefused(problem.message) from problem
    if isinstance(runner, LocalProcessRunner) and not runner.sandboxed and not plain_allowed():
        raise PlainCommandsRefused(
            "Commands are not run: no Docker engine answers and bubblewrap is not available, so the only way left "
            "is a plain subprocess without filesystem or network isolation, which is refused for agent commands. "
            "The operator can install bubblewrap or Docker, or set ORKET_AGENT_COMMANDS_ALLOW_PLAIN=1."
        )
    return runner


def command_run(
    *, card: Card, argv: list[str], workdir: str = ".", on_output: OutputCallback | None = None
) -> CommandOutcome:
    """Run `argv` over a throwaway copy of the card's checkout; raises CommandRefused or InvalidInput."""
    argv = check_argv(argv)
    checkout = card_workspace(card)
    if checkout is None:
        raise CommandRefused("The card has no checkout yet; there is nothing to run a command in.")
    runner = isolating_runner()
    commit, clean = checkout_state(checkout)
    limit = output_limit()
    where = _inside(workdir)
    with tempfile.TemporaryDirectory(prefix="orket-cmd-") as scratch:
        copy = Path(scratch) / "workspace"
        read_only, env = _python_tools()
        command = IsolatedCommand(
            argv=tuple(argv),
            read_only=read_only,
            writable={copy: WORKSPACE},
            workdir=where,
            env={**SANDBOX_ENV, **env},
            limits=command_limits(),
        )
        try:
            _throwaway_copy(checkout, copy)
            Path(scratch).chmod(0o755)
            result = runner.run(command, on_output=on_output)
        except CommandRefused:
            raise
        except Exception as error:  # the engine, the copy or the runner failed: the agent is told, the turn goes on
            log.exception("command of card %s could not be run", card.pk)
            raise CommandNotRun(f"The command could not be run: {type(error).__name__}: {error}") from error
    cut_out = result.output_truncated and len(result.stdout.encode()) >= command.limits.max_output_bytes
    cut_err = result.output_truncated and len(result.stderr.encode()) >= command.limits.max_output_bytes
    return CommandOutcome(
        argv=argv,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        stdout=cut_output(result.stdout, limit, already_cut=cut_out),
        stderr=cut_output(result.stderr, limit, already_cut=cut_err),
        duration_ms=result.duration_ms,
        backend=runner.name,
        isolation=result.isolation,
        commit=commit,
        clean=clean,
    )


def _inside(workdir: str) -> str:
    parts = [part for part in (workdir or ".").replace("\\", "/").split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise InvalidInput("The working folder must stay inside the checkout.", code="bad_workdir")
    return "/".join([WORKSPACE, *parts])


def checkout_state(checkout: Path) -> tuple[str, bool]:
    """(HEAD commit, no uncommitted changes) of the checkout; ("", False) when it is not a git checkout."""
    try:
        head = _git(checkout, "rev-parse", "HEAD")
        status = _git(checkout, "status", "--porcelain", "--untracked-files=all")
    except (OSError, subprocess.SubprocessError):
        return "", False
    return head.strip(), not status.strip()


def _git(checkout: Path, *args: str) -> str:
    # The checkout's own config may not run programs here (fsmonitor); the user's config is ignored.
    argv = ["git", "-c", "core.fsmonitor=", "-C", str(checkout), *args]
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_OPTIONAL_LOCKS": "0"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True, env=env)
    return done.stdout


def _throwaway_copy(checkout: Path, copy: Path) -> None:
    """A copy of the checkout (without .git) owned by the sandbox user, so the command may change it."""
    total = 0

    def ignore(folder: str, names: list[str]) -> set[str]:
        nonlocal total
        for name in names:
            path = Path(folder) / name
            if name not in COPY_SKIP and path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        if total > MAX_COPY_BYTES:
            raise CommandRefused(f"The checkout holds more than {MAX_COPY_BYTES // (1024 * 1024)} MB to copy.")
        # Only folders, regular files and links: a named pipe or a device would block or leak the copy.
        return {name for name in names if name in COPY_SKIP or not _copyable(Path(folder) / name)}

    shutil.copytree(checkout, copy, symlinks=True, ignore=ignore)
    owner = NOBODY if os.geteuid() == 0 else os.geteuid()
    for path in [copy, *copy.rglob("*")]:
        os.lchown(path, owner, owner)
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or path.stat().st_mode & 0o100 else 0o644)


def _copyable(path: Path) -> bool:
    try:
        mode = path.lstat().st_mode
    except OSError:
        return False
    return stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def _python_tools() -> tuple[dict[Path, str], dict[str, str]]:
    if not _flag("ORKET_COMMAND_OFFER_PYTEST", True):
        return {}, {}
    folder = _pytest_folder()
    if folder is None:
        return {}, {}
    return {folder: PYTHON_TOOLS}, {"PYTHONPATH": PYTHON_TOOLS}


def _pytest_folder() -> Path | None:
    """A read-only copy of the pytest that Orket itself runs with (pure Python), made once per data folder
    and pytest version, under DATA_DIR/command-tools/."""
    found = [spec for spec in map(_spec, PYTEST_PACKAGES) if spec is not None]
    if not any(origin.name in ("pytest", "pytest.py") for origin in found):
        return None
    key = hashlib.sha256("\n".join([importlib.metadata.version("pytest"), *map(str, found)]).encode()).hexdigest()
    root = Path(settings.DATA_DIR) / "command-tools"
    folder = root / f"python-{key[:16]}"
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    for origin in found:
        target = building / origin.name
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(origin, target)
    # Compiled now, as commands run with a read-only copy and PYTHONDONTWRITEBYTECODE: pytest would be
    # compiled again on every call (about a second). Interpreters of another version ignore these files.
    compileall.compile_dir(building, quiet=1, workers=1)
    for path in [building, *building.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    try:
        building.rename(folder)
    except OSError:  # another process made it first
        shutil.rmtree(building, ignore_errors=True)
    return folder


def _spec(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        return None
    origin = Path(spec.origin)
    return origin.parent if origin.name == "__init__.py" else origin


# -- the card's own tests ------------------------------------------------------------------------------------------


def card_tests_run(
    *,
    card: Card,
    requested_by: str,
    path: str = "",
    args: list[str] | None = None,
    on_output: OutputCallback | None = None,
) -> dict[str, Any]:
    """Run the checkout's test command and record it (kind card_tests); the summary the agent sees."""
    checkout = card_workspace(card)
    if checkout is None:
        raise CommandRefused("The card has no checkout yet; there are no tests to run.")
    try:
        suite = suite_command(checkout, path=path, args=args)
    except BadSuiteArguments as problem:
        raise InvalidInput(str(problem), code="bad_test_arguments") from problem
    if suite is None:
        raise CommandRefused(
            "No test command is known for this checkout: no Python, Node, .NET, Go, Rust or Maven project was "
            "found. Use run_command with the command that runs its tests."
        )
    started_at = timezone.now()
    outcome = command_run(card=card, argv=list(suite.argv), workdir=suite.workdir, on_output=on_output)
    counts = parse_counts(suite.tool, outcome.stdout + "\n" + outcome.stderr)
    status = _status(outcome, counts, suite.tool)
    narrowed = bool(path.strip().strip("/.") or args)
    run, gate = _record(card, requested_by, outcome, counts, status, narrowed=narrowed, started_at=started_at)
    summary = outcome.for_agent()
    summary.update(
        tool=suite.tool,
        why=suite.why,
        status=status,
        passed=counts.passed,
        failed=counts.failed,
        errors=counts.errors,
        skipped=counts.skipped,
        summary=counts.summary or "(no summary line was recognised in the output)",
        verification={"run": run.pk, "kind": VerificationKind.CARD_TESTS, "counts_for_gate": gate[0], "why": gate[1]},
    )
    summary["content"] = summary.pop("content")  # last, after the header fields
    return summary


def _status(outcome: CommandOutcome, counts: SuiteCounts, tool: str) -> str:
    if outcome.timed_out:
        return VerificationStatus.TIMED_OUT
    if tool == "pytest" and outcome.exit_code == 5:
        return VerificationStatus.ERROR  # pytest collected no tests
    if outcome.exit_code == 0 and not (counts.failed or counts.errors):
        return VerificationStatus.PASSED if counts.passed != 0 else VerificationStatus.ERROR
    if counts.parsed:
        return VerificationStatus.FAILED
    return VerificationStatus.ERROR


def _record(
    card: Card,
    requested_by: str,
    outcome: CommandOutcome,
    counts: SuiteCounts,
    status: str,
    *,
    narrowed: bool,
    started_at: Any,
) -> tuple[VerificationRun, tuple[bool, str]]:
    checkout = card_workspace(card)
    commit_after, clean_after = checkout_state(checkout) if checkout else ("", False)
    gate = _counts_for_gate(card, outcome, status, narrowed, commit_after, clean_after)
    with transaction.atomic():
        run = VerificationRun.objects.create(
            card=card,
            kind=VerificationKind.CARD_TESTS,
            backend=outcome.backend,
            isolation=outcome.isolation[:200],
            status=status,
            passed=counts.passed or 0,
            failed=counts.failed or 0,
            errors=counts.errors or 0,
            commit_sha=outcome.commit[:40],
            results=[
                {
                    "kind": "card_tests",
                    "argv": outcome.argv,
                    "exit_code": outcome.exit_code,
                    "summary": counts.summary,
                    "skipped": counts.skipped,
                    "narrowed": narrowed,
                    "counts_for_gate": gate[0],
                    "why": gate[1],
                }
            ],
            output=(outcome.stdout + "\n" + outcome.stderr)[-MAX_STORED_OUTPUT:],
            duration_ms=outcome.duration_ms,
            requested_by=requested_by[:120],
            started_at=started_at,
            finished_at=timezone.now(),
        )
        if gate[0]:
            board_services.card_record_verification(
                card=card,
                result="passed" if status == VerificationStatus.PASSED else "failed",
                actor=Actor.orket("verification"),
                reason=f"Verification {run.pk} (card's own tests at {outcome.commit[:12]}): {counts.summary or status}",
            )
    return run, gate


def _counts_for_gate(
    card: Card, outcome: CommandOutcome, status: str, narrowed: bool, commit_after: str, clean_after: bool
) -> tuple[bool, str]:
    """Whether this run becomes the card's latest verification, and why (not)."""
    if require_human_fixture(card):
        return False, "This project requires a verification fixture owned by a person; the card's tests do not count."
    if narrowed:
        return False, "Only a run of the whole suite (no path or args) counts as a verification."
    if not outcome.commit or not outcome.clean:
        return False, "The checkout had changes that are not committed yet; run the tests again after this step."
    if commit_after != outcome.commit or not clean_after:
        return False, "The card's code changed while the tests ran; run them again."
    if status not in (VerificationStatus.PASSED, VerificationStatus.FAILED):
        return False, f"The run ended as {status}; it is recorded but does not change the card's verification."
    return True, f"Recorded as the card's latest verification ({status}) for commit {outcome.commit[:12]}."
