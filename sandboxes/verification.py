"""Verification services: fixtures people upload, and runs of them against the agents' code in isolation.

    fixture = fixture_upload(card=card, raw=bytes_, name="parser.json", user=user)   # validated, stored, hashed
    run = verification_start(card=card, requested_by="alice")                       # queued; a Celery task runs it
    verification_run(run_id=run.pk)                                                   # what the task calls
    summary = verification_for_agent(card=card, requested_by="integrity_guard")      # synchronous, for the engine

Fixtures are stored under ORKET_DATA_DIR/fixtures/<project>/<sha256>.json, beside (never inside) the
agents' workspaces under ORKET_DATA_DIR/workspaces/. A run gives the isolated runner the workspace
read-only and the scenarios' inputs only; the expected values stay here, and the outputs are graded
here, so code under test can neither read the answers nor forge a pass. HTTP scenarios run from the
worker against the card's running sandbox. The card's `last_verification` is set through
`boards.services.card_record_verification`: anything but a pass is recorded as failed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from boards import services as board_services
from boards.access import require_project_role
from boards.actors import Actor
from boards.errors import IllegalState, InvalidInput
from boards.models import Card, ProjectRole
from sandboxes import dispatch
from sandboxes.fixtures import Fixture, FixtureInvalid, http_matches, load_fixture, parse_fixture
from sandboxes.isolation import IsolatedCommand, IsolatedRunner, Limits
from sandboxes.local_backend import LocalProcessRunner
from sandboxes.log_streams import LogWriter, log_stream_close, log_stream_open
from sandboxes.models import (
    Backend,
    LogStream,
    LogStreamKind,
    Sandbox,
    SandboxStatus,
    VerificationFixture,
    VerificationKind,
    VerificationRun,
    VerificationStatus,
)
from sandboxes.runner import verify_runner

log = logging.getLogger(__name__)

RUNNER_SCRIPT = Path(verify_runner.__file__).resolve()
# On every runner's command line, so the processes and containers this worker process started can be told apart.
RUNNER_TAG = f"orket-{os.getpid()}-{secrets.token_hex(4)}"
FINISHED = frozenset({VerificationStatus.PASSED, VerificationStatus.FAILED, VerificationStatus.ERROR,
                      VerificationStatus.TIMED_OUT})  # fmt: skip
MAX_STORED_OUTPUT = 100_000
STALE_GRACE_SECONDS = 300
REQUEUE_AFTER_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 15.0


class FixtureTooLarge(InvalidInput):
    status = 413
    code = "fixture_too_large"


class VerificationUnavailable(IllegalState):
    code = "verification_unavailable"


def _setting(name: str, default: str) -> str:
    return str(getattr(settings, name, None) or os.environ.get(name, "") or default)


def fixture_max_bytes() -> int:
    return int(_setting("ORKET_FIXTURE_MAX_BYTES", str(1024 * 1024)))


def verification_timeout() -> float:
    return float(_setting("ORKET_VERIFICATION_TIMEOUT", "60"))


def verification_limits() -> Limits:
    return Limits(
        timeout_seconds=verification_timeout(),
        memory_mb=int(_setting("ORKET_VERIFICATION_MEMORY_MB", "512")),
        max_processes=int(_setting("ORKET_VERIFICATION_MAX_PROCESSES", "64")),
        cpus=float(_setting("ORKET_VERIFICATION_CPUS", "1")),
        max_output_bytes=1_000_000,
    )


def fixtures_root() -> Path:
    return Path(settings.DATA_DIR) / "fixtures"


def workspaces_root() -> Path:
    """Where agents write (see agents.turns._workspace_for): fixtures must never be stored under it."""
    return Path(settings.DATA_DIR) / "workspaces"


def card_workspace(card: Card) -> Path | None:
    """The card's worktree, else the project's main checkout, else None."""
    root = workspaces_root() / f"project-{card.project_id}"
    for candidate in (root / "cards" / str(card.pk), root / "repo"):
        if candidate.is_dir():
            return candidate
    return None


# -- backends ------------------------------------------------------------------------------------------------


def choose_runner() -> IsolatedRunner:
    """ORKET_SANDBOX_BACKEND: `auto` (Docker when an engine answers, else local), `docker` or `local`."""
    mode = _setting("ORKET_SANDBOX_BACKEND", "auto").strip().lower()
    if mode not in {"auto", "docker", "local"}:
        raise VerificationUnavailable(f"ORKET_SANDBOX_BACKEND must be auto, docker or local, not {mode!r}.")
    if mode in {"auto", "docker"}:
        runner = _docker_runner()
        if runner is not None:
            return runner
        if mode == "docker":
            raise VerificationUnavailable("ORKET_SANDBOX_BACKEND=docker, but no Docker engine answers.")
    return LocalProcessRunner()


_DOCKER_CHECK: dict[str, Any] = {"at": -1e9, "runner": None, "image": None}
DOCKER_CHECK_SECONDS = 30.0


def _docker_runner() -> IsolatedRunner | None:
    """A DockerRunner when an engine answers with the runner image; the answer is kept for half a minute,
    so a verification does not ask the engine (or try to pull) twice."""
    image = os.environ.get("ORKET_SANDBOX_RUNNER_IMAGE", "")
    if time.monotonic() - _DOCKER_CHECK["at"] < DOCKER_CHECK_SECONDS and _DOCKER_CHECK["image"] == image:
        return _DOCKER_CHECK["runner"]
    runner: IsolatedRunner | None = None
    try:
        from sandboxes.docker_backend import DockerRunner  # written beside this module; may be absent

        candidate = DockerRunner()
        runner = candidate if candidate.available() else None
    except ImportError:
        runner = None
    except Exception as error:  # any failure to reach the engine means: use the local backend
        log.info("docker runner unavailable: %s", error)
        runner = None
    _DOCKER_CHECK.update(at=time.monotonic(), runner=runner, image=image)
    return runner


# -- fixtures ------------------------------------------------------------------------------------------------


def _fixture_path(project_id: int, sha256: str) -> Path:
    path = fixtures_root() / str(project_id) / f"{sha256}.json"
    if path.resolve().is_relative_to(workspaces_root().resolve()):
        raise RuntimeError("fixtures would be stored inside the agents' workspaces")
    return path


def _store(path: Path, raw: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for folder in (fixtures_root(), path.parent):
        folder.chmod(0o755)
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == path.stem:
        return
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(raw)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
        raise


def fixture_upload(*, card: Card, raw: bytes, name: str, user: AbstractBaseUser) -> VerificationFixture:
    """Validate, store and record a fixture for `card`, and point the card at it. Members only; any
    problem raises before anything is written (InvalidInput with `errors`, FixtureTooLarge)."""
    require_project_role(user, card.project_id, ProjectRole.MEMBER)
    limit = fixture_max_bytes()
    if len(raw) > limit:
        raise FixtureTooLarge(f"The fixture has {len(raw)} bytes; at most {limit} are accepted.")
    try:
        parsed = load_fixture(raw)
    except FixtureInvalid as invalid:
        raise InvalidInput(str(invalid), code="fixture_invalid", errors=invalid.as_list()) from invalid
    sha256 = hashlib.sha256(raw).hexdigest()
    label = (name or parsed.name or "fixture").strip()[:200] or "fixture"
    path = _fixture_path(card.project_id, sha256)
    _store(path, raw)
    with transaction.atomic():
        fixture = VerificationFixture.objects.create(
            project_id=card.project_id,
            card=card,
            name=label,
            sha256=sha256,
            storage_path=str(path),
            scenario_count=parsed.count,
            uploaded_by=user,
        )
        board_services.card_update(card=card, actor=Actor.for_user(user), verification_fixture=f"sha256:{sha256}")
    return fixture


def fixture_read(fixture: VerificationFixture) -> Fixture:
    """The stored fixture, checked against its recorded hash."""
    path = Path(fixture.storage_path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise VerificationUnavailable(f"The fixture file of {fixture} cannot be read: {error}.") from error
    if hashlib.sha256(raw).hexdigest() != fixture.sha256:
        raise VerificationUnavailable(f"The fixture file of {fixture} no longer matches its recorded SHA-256.")
    return load_fixture(raw)


def card_fixture(card: Card) -> tuple[VerificationFixture | None, Fixture | None, str]:
    """The fixture a verification of `card` uses: the one the card names (sha256:<hex>), else the card's
    latest upload, else the scenarios written on the card. (row, fixture, why-not message)."""
    reference = card.verification_fixture.strip()
    rows = VerificationFixture.objects.filter(project_id=card.project_id)
    if reference.startswith("sha256:"):
        row = rows.filter(sha256=reference.removeprefix("sha256:")).first()
        if row is None:
            return None, None, f"The card names fixture {reference}, but no uploaded fixture of this project has it."
        return row, fixture_read(row), ""
    row = rows.filter(card=card).first()
    if row is not None:
        return row, fixture_read(row), ""
    if card.verification_scenarios:
        try:
            return None, parse_fixture(card.verification_scenarios), ""
        except FixtureInvalid as invalid:
            return None, None, f"The card's verification scenarios are not valid: {invalid}"
    if reference:
        return None, None, f"The card names fixture {reference!r}, but no uploaded fixture matches it; upload it."
    return None, None, "This card has no verification fixture; nothing was run."


# -- runs ----------------------------------------------------------------------------------------------------


def verification_start(
    *, card: Card, requested_by: str, kind: str = VerificationKind.FIXTURE, user: AbstractBaseUser | None = None
) -> VerificationRun:
    """A queued run of the card's fixture (or of the agents' pytest suite, kind=pytest), executed by the
    `sandboxes.verification_run` task after commit."""
    verification_runs_recover(card=card)
    run = _create(card=card, requested_by=requested_by, kind=kind, user=user)
    dispatch.queue_verification_run(run_id=run.pk)
    return run


def verification_runs_recover(*, card: Card | None = None) -> int:
    """The database is the record: a run `running` for longer than the timeout plus a grace period lost its
    worker and ends as an error; a run `queued` for over a minute (a lost message, an embedded worker that
    restarted) is sent again (claiming is idempotent). Returns how many runs were touched."""
    now = timezone.now()
    runs = VerificationRun.objects.all() if card is None else VerificationRun.objects.filter(card=card)
    stale = runs.filter(
        status=VerificationStatus.RUNNING,
        started_at__lt=now - timedelta(seconds=verification_timeout() + STALE_GRACE_SECONDS),
    )
    touched = stale.update(
        status=VerificationStatus.ERROR,
        finished_at=now,
        output="The worker running this verification stopped before it finished; start a new one.",
    )
    for run_id in runs.filter(
        status=VerificationStatus.QUEUED, created_at__lt=now - timedelta(seconds=REQUEUE_AFTER_SECONDS)
    ).values_list("pk", flat=True):
        dispatch.queue_verification_run(run_id=run_id)
        touched += 1
    return touched


def _create(*, card: Card, requested_by: str, kind: str, user: AbstractBaseUser | None) -> VerificationRun:
    if user is not None:
        require_project_role(user, card.project_id, ProjectRole.MEMBER)
    if kind not in VerificationKind.values or kind == VerificationKind.CARD_TESTS:
        raise InvalidInput(f"Unknown verification kind {kind!r}; use fixture or pytest.", code="bad_kind")
    row: VerificationFixture | None = None
    if kind != VerificationKind.PYTEST:
        row, fixture, problem = card_fixture(card)
        if fixture is None:
            raise InvalidInput(problem, code="no_fixture")
        if not fixture.scenarios:
            kind = VerificationKind.HTTP
    # The worker decides the backend when it runs (and records it); this is what the setting asks for.
    wanted = Backend.DOCKER if _setting("ORKET_SANDBOX_BACKEND", "auto").strip().lower() == "docker" else Backend.LOCAL
    return VerificationRun.objects.create(
        card=card,
        fixture=row,
        kind=kind,
        backend=wanted,
        isolation="",
        requested_by=requested_by[:120],
    )


def verification_for_agent(*, card: Card, requested_by: str) -> dict[str, Any]:
    """Run the card's verification now, within the agent's turn (bounded by the timeout), and return a
    summary for the agent. Expected values are not shown to agents, only descriptions and outcomes."""
    try:
        run = _create(card=card, requested_by=requested_by, kind=VerificationKind.FIXTURE, user=None)
    except InvalidInput as problem:
        status = "not_configured" if problem.code == "no_fixture" else "error"
        return {"status": status, "message": problem.message}
    except VerificationUnavailable as problem:
        return {"status": "unavailable", "message": problem.message}
    run = verification_run(run_id=run.pk)
    return run_summary(run, for_agent=True)


def run_summary(run: VerificationRun, *, for_agent: bool = False) -> dict[str, Any]:
    scenarios = []
    for result in run.results:
        entry = {key: result.get(key) for key in ("id", "kind", "description", "status", "error", "duration_ms")}
        entry["output"] = result.get("output")
        if for_agent and result.get("status") == "failed":
            entry["message"] = "The output differs from what the fixture expects."
        if not for_agent:
            entry["expected"] = result.get("expected")
        scenarios.append(entry)
    return {
        "run": run.pk,
        "status": run.status,
        "kind": run.kind,
        "passed": run.passed,
        "failed": run.failed,
        "errors": run.errors,
        "backend": run.backend,
        "isolation": run.isolation,
        "duration_ms": run.duration_ms,
        "message": _headline(run),
        "scenarios": scenarios,
    }


def _headline(run: VerificationRun) -> str:
    if run.status == VerificationStatus.PASSED:
        return f"All {run.passed} scenario(s) passed."
    if run.status == VerificationStatus.TIMED_OUT:
        return "The verification ran out of time and was stopped."
    if run.status == VerificationStatus.FAILED:
        return f"{run.failed} failed and {run.errors} raised errors of {len(run.results)} scenario(s)."
    if run.status == VerificationStatus.ERROR:
        return (run.output or "The verification could not be run.")[:500]
    return f"The verification is {run.status}."


def verification_run(*, run_id: int) -> VerificationRun:
    """Execute a queued run and record its outcome on the run and the card. Idempotent: a run that is
    already finished (or taken by another worker) is returned as it is."""
    with transaction.atomic():
        claimed = VerificationRun.objects.filter(pk=run_id, status=VerificationStatus.QUEUED).update(
            status=VerificationStatus.RUNNING, started_at=timezone.now()
        )
    run = VerificationRun.objects.select_related("card", "fixture").get(pk=run_id)
    if not claimed:
        return run
    started = time.monotonic()
    stream = _open_log_stream(run)
    writer = LogWriter(stream.pk) if stream is not None else None
    outcome = _Outcome(writer)
    try:
        _execute(run, outcome)
    except (VerificationUnavailable, OSError, InvalidInput) as error:
        outcome.status = VerificationStatus.ERROR
        outcome.notes.append(getattr(error, "message", str(error)))
    except Exception as error:  # a backend failing in any other way must still finish the run
        log.exception("verification run %s failed", run_id)
        outcome.status = VerificationStatus.ERROR
        outcome.notes.append(f"The verification could not be run: {type(error).__name__}: {error}")
    run.status = outcome.final_status()
    run.results = outcome.results
    run.passed = sum(1 for r in outcome.results if r.get("status") == "passed")
    run.failed = sum(1 for r in outcome.results if r.get("status") == "failed")
    run.errors = sum(1 for r in outcome.results if r.get("status") == "error")
    run.isolation = outcome.isolation[:200] or run.isolation
    run.backend = outcome.backend or run.backend
    run.output = "\n".join([*outcome.notes, outcome.stderr])[:MAX_STORED_OUTPUT].strip()
    run.duration_ms = int((time.monotonic() - started) * 1000)
    run.finished_at = timezone.now()
    if writer is not None and stream is not None:
        writer(
            "stderr",
            f"\n[orket: verification {run.status}: {run.passed} passed, {run.failed} failed, {run.errors} errors]\n",
        )
        writer.close()
        log_stream_close(stream_id=stream.pk)
    with transaction.atomic():
        run.save()
        if run.kind != VerificationKind.PYTEST:
            result = "passed" if run.status == VerificationStatus.PASSED else "failed"
            board_services.card_record_verification(
                card=run.card,
                result=result,
                actor=Actor.orket("verification"),
                reason=f"Verification {run.pk}: {_headline(run)}",
            )
    return run


def _open_log_stream(run: VerificationRun) -> LogStream | None:
    """The stream the run's output goes to while it runs; None (and logged) when it cannot be opened."""
    try:
        return log_stream_open(
            project_id=run.card.project_id,
            kind=LogStreamKind.VERIFICATION,
            label=f"verification {run.pk} of card #{run.card_id}",
            verification_run_id=run.pk,
            refs={"card": run.card_id},
        )
    except Exception:  # the verification matters more than its live output
        log.exception("could not open the log stream of verification %s", run.pk)
        return None


class _Outcome:
    def __init__(self, writer: LogWriter | None = None) -> None:
        self.writer = writer
        self.results: list[dict[str, Any]] = []
        self.status: str = ""
        self.notes: list[str] = []
        self.stderr = ""
        self.isolation = ""
        self.backend = ""

    def output_to_stream(self, channel: str, text: str) -> None:
        """The runner's standard error as it comes (its standard output is the report, not for people)."""
        if self.writer is not None and channel == "stderr":
            self.writer(channel, text)

    def final_status(self) -> str:
        if self.status:
            return self.status
        if not self.results:
            return VerificationStatus.ERROR
        if all(result.get("status") == "passed" for result in self.results):
            return VerificationStatus.PASSED
        return VerificationStatus.FAILED


def _execute(run: VerificationRun, outcome: _Outcome) -> None:
    card = run.card
    workspace = card_workspace(card)
    if run.kind == VerificationKind.PYTEST:
        if workspace is None:
            raise VerificationUnavailable("The card has no workspace yet; there is no code to test.")
        _run_pytest(workspace, outcome)
        return
    fixture = fixture_read(run.fixture) if run.fixture is not None else card_fixture(card)[1]
    if fixture is None:
        raise VerificationUnavailable("The card no longer has a usable fixture.")
    if fixture.scenarios:
        if workspace is None:
            raise VerificationUnavailable("The card has no workspace yet; there is no code to verify.")
        _run_function_scenarios(fixture, workspace, outcome)
    if fixture.http_scenarios:
        _run_http_scenarios(card, fixture, outcome)


def _isolated(argv: tuple[str, ...], read_only: dict[Path, str], outcome: _Outcome) -> dict[str, Any] | None:
    """Run the runner in isolation; its JSON report, or None (with outcome.status/notes set)."""
    runner = choose_runner()
    command = IsolatedCommand(
        argv=argv,
        read_only={**read_only, RUNNER_SCRIPT: "/orket/verify_runner.py"},
        workdir="/workspace",
        limits=verification_limits(),
    )
    result = runner.run(command, on_output=outcome.output_to_stream)
    outcome.isolation, outcome.backend = result.isolation, runner.name
    outcome.stderr = result.stderr[-20_000:]
    if result.timed_out:
        outcome.status = VerificationStatus.TIMED_OUT
        outcome.notes.append(f"Stopped after {command.limits.timeout_seconds:g} s (the time limit).")
        return None
    report = _report(result.stdout)
    if report is None:
        if result.stderr.startswith("orket: could not"):
            outcome.status = VerificationStatus.ERROR
            outcome.notes.append("The isolated runner could not be started.")
        else:
            # The runner is ours and stops early only because of the code under test (exit, a fatal
            # signal, a resource limit): the verification failed.
            outcome.status = VerificationStatus.FAILED
            outcome.notes.append(
                f"The code under test stopped the runner before it reported (exit code {result.exit_code})."
            )
    return report


def _report(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and data.get("orket_runner") == 1:
            return data
    return None


def _run_function_scenarios(fixture: Fixture, workspace: Path, outcome: _Outcome) -> None:
    with tempfile.TemporaryDirectory(prefix="orket-verify-") as scratch:
        spec_path = Path(scratch) / "scenarios.json"
        spec_path.write_text(json.dumps(fixture.runner_spec()))
        Path(scratch).chmod(0o755)
        spec_path.chmod(0o644)
        argv = (
            "python3",
            "-I",
            "/orket/verify_runner.py",
            "--workspace",
            "/workspace",
            "--scenarios",
            "/orket/scenarios.json",
            "--tag",
            RUNNER_TAG,
        )
        report = _isolated(argv, {workspace: "/workspace", spec_path: "/orket/scenarios.json"}, outcome)
    raw = {str(r.get("id")): r for r in (report or {}).get("scenarios", []) if isinstance(r, dict)}
    if report and report.get("import_error"):
        outcome.notes.append(str(report["import_error"])[:4000])
    for scenario in fixture.scenarios:
        got = raw.get(scenario["id"])
        if got is None:
            reason = "not run: the verification was stopped" if outcome.status else "no result was reported"
            graded: dict[str, Any] = {"id": scenario["id"], "status": "error", "error": reason, "duration_ms": None}
            graded["expected"] = scenario["expected"]
        else:
            graded = verify_runner.grade(
                {key: got.get(key) for key in ("id", "status", "output", "error", "stdout", "duration_ms")},
                scenario["expected"],
            )
        graded.update(kind="function", description=scenario.get("description", ""), input=scenario["input"])
        outcome.results.append(graded)


def _sandbox_url(card: Card, service: str) -> tuple[Sandbox | None, str]:
    running = Sandbox.objects.filter(project_id=card.project_id, status=SandboxStatus.RUNNING)
    sandbox = running.filter(card=card).first() or running.filter(card__isnull=True).first()
    if sandbox is None or not isinstance(sandbox.urls, dict) or not sandbox.urls:
        return sandbox, ""
    urls = sandbox.urls
    name = service if service in urls else next((n for n in ("web", "app", "api") if n in urls), sorted(urls)[0])
    return sandbox, str(urls[name])


def _run_http_scenarios(card: Card, fixture: Fixture, outcome: _Outcome) -> None:
    sandbox, base = _sandbox_url(card, fixture.service)
    if not base:
        outcome.status = VerificationStatus.ERROR
        outcome.notes.append("HTTP scenarios need a running sandbox of this card or project; there is none.")
        for scenario in fixture.http_scenarios:
            outcome.results.append(
                {
                    "id": scenario["id"],
                    "kind": "http",
                    "description": scenario.get("description", ""),
                    "status": "error",
                    "error": "There is no running sandbox for this card or project to send the request to.",
                    "duration_ms": None,
                }
            )
        return
    outcome.backend = outcome.backend or (sandbox.backend if sandbox else "")
    with httpx.Client(base_url=base.rstrip("/"), timeout=HTTP_TIMEOUT_SECONDS, trust_env=False) as client:
        for scenario in fixture.http_scenarios:
            outcome.results.append(_http_one(client, scenario))


def _http_one(client: httpx.Client, scenario: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": scenario["id"],
        "kind": "http",
        "description": scenario.get("description", ""),
        "request": {"method": scenario["method"], "endpoint": scenario["endpoint"]},
        "expected": {key: scenario.get(key) for key in ("expected_status", "expected_output") if key in scenario},
    }
    payload = scenario.get("payload")
    started = time.perf_counter()
    try:
        response = client.request(
            scenario["method"],
            scenario["endpoint"],
            json=payload if payload is not None and scenario["method"] not in ("GET", "HEAD") else None,
            params=payload if isinstance(payload, dict) and scenario["method"] in ("GET", "HEAD") else None,
            headers=scenario.get("headers") or None,
        )
    except httpx.HTTPError as error:
        result.update(status="error", error=f"The request failed: {error}", duration_ms=None)
        return result
    result["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    text = response.text[: MAX_STORED_OUTPUT // 10]
    try:
        body, has_json = response.json(), True
    except ValueError:
        body, has_json = None, False
    result["output"] = {"status": response.status_code, "body": body if has_json else text}
    problems = []
    expected_status = scenario.get("expected_status")
    if expected_status is not None and response.status_code != expected_status:
        problems.append(f"the status is {response.status_code}, not {expected_status}")
    if "expected_output" in scenario:
        ok, why = http_matches(scenario["expected_output"], response.status_code, response.text, body, has_json)
        if not ok:
            problems.append(why)
    result["status"] = "failed" if problems else "passed"
    result["error"] = "; ".join(problems)
    return result


def _run_pytest(workspace: Path, outcome: _Outcome) -> None:
    timeout = verification_timeout()
    argv = ("python3", "-I", "/orket/verify_runner.py", "--workspace", "/workspace", "--pytest", "--timeout",
            str(max(timeout - 5, 1)), "--tag", RUNNER_TAG)  # fmt: skip
    report = _isolated(argv, {workspace: "/workspace"}, outcome)
    if report is None:
        return
    if not report.get("pytest_available"):
        outcome.status = VerificationStatus.ERROR
        outcome.notes.append(str(report.get("message") or "pytest is not available in the isolation."))
        return
    for test in report.get("tests", []):
        outcome.results.append({**test, "kind": "pytest"})
    if not report.get("echoed"):  # else it is in the runner's standard error already
        outcome.notes.append(str(report.get("output", ""))[-20_000:])
    if not outcome.results:
        outcome.status = VerificationStatus.ERROR if report.get("exit_code") not in (0, 5) else ""
        outcome.notes.append("pytest collected no tests.")
    elif any(t.get("status") in ("failed", "error") for t in outcome.results):
        outcome.status = VerificationStatus.FAILED
    else:
        outcome.status = VerificationStatus.PASSED
