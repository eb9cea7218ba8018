"""A project's source repository at size: a repository of 10,000 files and 2,000 commits (made with
git fast-import), served by `git http-backend` on 127.0.0.1, and

- clone_s: Orket's clone of it (agents.sources.gitops.clone, with progress parsing), and the
  progress reports it made;
- fetch_noop_s and fetch_s: a fetch with nothing new, and one after 20 new upstream commits;
- first_turn_s: on the embedded default (SQLite, a Celery worker thread), the time from setting the
  project's source (source_repository_set, the clone task) to the first turn of a run started as
  soon as the clone is ready (the run fetches first); split into clone_ready_s and run_to_turn_s.

Usage, from the repository root: .venv/bin/python benchmarks/bench_clone.py
The Django part runs in a child process with a data folder of its own. Exits non-zero on failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.agents.git_http import GIT_ENV, GitHttpServer, commit_upstream, git  # noqa: E402
from tests.processes import PYTHON, app_env  # noqa: E402

FILES = 10_000
COMMITS = 2_000
NEW_COMMITS = 20
TIMEOUT = 600.0


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fast_import_stream(files: int, commits: int) -> bytes:
    """The first commit adds `files` files in 100 folders; each later commit changes five of them."""
    parts: list[bytes] = []
    stamp = 1_700_000_000

    def data(text: str) -> None:
        raw = text.encode()
        parts.append(b"data %d\n" % len(raw) + raw + b"\n")

    for number in range(commits):
        parts.append(b"commit refs/heads/trunk\n")
        parts.append(b"committer Bench <bench@example.com> %d +0000\n" % (stamp + number * 60))
        data(f"Commit {number}")
        if number == 0:
            for index in range(files):
                parts.append(f"M 100644 inline src/pkg{index % 100:02d}/module_{index:05d}.py\n".encode())
                data(f'"""Module {index}."""\n\nVALUE = {index}\n\n\ndef value() -> int:\n    return VALUE\n')
        else:
            for offset in range(5):
                index = (number * 5 + offset) % files
                parts.append(f"M 100644 inline src/pkg{index % 100:02d}/module_{index:05d}.py\n".encode())
                data(f'"""Module {index}, revision {number}."""\n\nVALUE = {index + number}\n')
    return b"".join(parts)


def make_repository(served: Path) -> Path:
    bare = served / "big.git"
    served.mkdir(parents=True, exist_ok=True)
    git(served, "init", "--quiet", "--bare", "--initial-branch=trunk", bare.name)
    started = time.monotonic()
    done = subprocess.run(
        ["git", "fast-import", "--quiet"],
        cwd=bare,
        env=GIT_ENV,
        input=fast_import_stream(FILES, COMMITS),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"git fast-import failed: {done.stderr.decode()[-500:]}")
    git(bare, "repack", "-a", "-d", "--quiet")
    count = git(bare, "rev-list", "--count", "trunk")
    files = len(git(bare, "ls-tree", "-r", "--name-only", "trunk").splitlines())
    say(f"repository commits={count} files={files} made_in_s={time.monotonic() - started:.1f}")
    return bare


def bench_git(server: GitHttpServer, bare: Path, workdir: Path) -> None:
    from agents.sources import gitops

    reports: list[tuple[float, int, str]] = []
    started = time.monotonic()
    result = gitops.clone(
        server.url("big.git"),
        workdir / "clone",
        on_progress=lambda percent, phase: reports.append((time.monotonic() - started, percent, phase)),
    )
    clone_s = time.monotonic() - started
    say(
        f"clone_s={clone_s:.2f} default_branch={result.default_branch} progress_reports={len(reports)} "
        f"phases={','.join(dict.fromkeys(phase for _, _, phase in reports))}"
    )
    started = time.monotonic()
    gitops.fetch(workdir / "clone", default_branch="trunk")
    say(f"fetch_noop_s={time.monotonic() - started:.2f}")
    for number in range(NEW_COMMITS):
        commit_upstream(bare, "trunk", {f"src/new/file_{number}.py": f"N = {number}\n"}, f"New upstream {number}")
    started = time.monotonic()
    fetched = gitops.fetch(workdir / "clone", default_branch="trunk")
    say(f"fetch_s={time.monotonic() - started:.2f} new_commits={NEW_COMMITS} head={fetched.sha[:10]}")


def child(url: str) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    from agents import services as agent_services
    from agents.models import Turn
    from agents.sources import services
    from agents.sources.models import SourceRepository
    from boards.models import Epic
    from orket_site.seed import seed_first_run
    from tests.agents.engine_support import worker_thread

    call_command("migrate", verbosity=0)
    seed_first_run()
    epic = Epic.objects.get(project__slug="demo")
    with worker_thread():
        started = time.monotonic()
        services.source_repository_set(project=epic.project, user=None, kind="remote", url=url)
        deadline = started + TIMEOUT
        while time.monotonic() < deadline:
            source = SourceRepository.objects.get(project=epic.project)
            if source.state != "cloning":
                break
            time.sleep(0.05)
        if source.state != "ready":
            say(f"FAILED first_turn: the clone ended {source.state}: {source.error}")
            return 1
        ready = time.monotonic()
        run = agent_services.run_start(epic=epic)
        while time.monotonic() < deadline:
            if Turn.objects.filter(run=run).exclude(started_at=None).exists():
                break
            time.sleep(0.02)
        else:
            say("FAILED first_turn: no turn started")
            return 1
        turned = time.monotonic()
        agent_services.run_cancel(run=run)
    say(
        f"first_turn_s={turned - started:.2f} clone_ready_s={ready - started:.2f} "
        f"run_to_turn_s={turned - ready:.2f} (set source -> clone task -> run fetch -> first turn)"
    )
    return 0


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(sys.argv[2])
    with tempfile.TemporaryDirectory(prefix="orket-bench-clone-") as temp:
        workdir = Path(temp)
        bare = make_repository(workdir / "served")
        with GitHttpServer(workdir / "served") as server:
            bench_git(server, bare, workdir)
            env = app_env(
                ORKET_DATA_DIR=str(workdir / "data"),
                ORKET_LOG_LEVEL="WARNING",
                PYTHONPATH=str(ROOT),
            )
            (workdir / "data").mkdir()
            code = subprocess.run(
                [PYTHON, str(Path(__file__).resolve()), "--child", server.url("big.git")],
                cwd=ROOT,
                env=env,
                timeout=TIMEOUT,
                check=False,
            ).returncode
    return code


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orket_site.settings")
    sys.exit(main())
