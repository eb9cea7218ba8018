"""Cloning and fetching a project's source repository, and the operator's local-path rule. No Django.

    roots = parse_roots(os.environ.get("ORKET_LOCAL_REPO_ROOTS", ""))
    path = local_path_check("/srv/git/app", roots)            # the real path, or SourceRefused
    result = clone(url, dest, token=token, config=pinned, on_progress=report)
    result = fetch(dest, token=token, config=pinned)

The token travels as an HTTP header in GIT_CONFIG_* environment variables (see agents.gitea.git_remote),
never in the URL, on the command line or in .git/config, and it is scrubbed from anything git prints.
A local path is cloned with --no-local (git's upload-pack, made for repositories nobody vouches for),
and no other git command runs inside it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agents.gitea.git_remote import auth_env as remote_env
from agents.gitea.git_remote import scrub_token as scrub
from agents.workspaces import BASE_BRANCH_KEY, WORKSPACE_GIT_CONFIG, git_env

ROOTS_SETTING = "ORKET_LOCAL_REPO_ROOTS"
CLONE_TIMEOUT = 3600.0
FETCH_TIMEOUT = 900.0
MAX_PATH_CHARS = 1000
_BRANCH = re.compile(r"^(?!-)(?!/)(?!.*\.\.)(?!.*//)(?!.*@\{)(?!.*\.lock$)(?!.*/$)(?!.*\.$)[A-Za-z0-9._/-]{1,200}$")
_PROGRESS = re.compile(
    r"(Counting objects|Compressing objects|Receiving objects|Resolving deltas|Updating files):\s+(\d+)%"
)
# Where each phase of a clone sits in the overall 0-100 shown to people.
_PHASES = {
    "Counting objects": (0, 5),
    "Compressing objects": (5, 10),
    "Receiving objects": (10, 80),
    "Resolving deltas": (80, 90),
    "Updating files": (90, 100),
}
Progress = Callable[[int, str], None]


class SourceRefused(Exception):
    """A source the rules refuse (a path outside the roots, a bad branch name); the message says why."""

    def __init__(self, message: str, code: str = "source_refused") -> None:
        super().__init__(message)
        self.message, self.code = message, code


class SourceGitFailed(Exception):
    """git clone or fetch failed; the message is safe to show (no token) and says what to do."""

    def __init__(self, message: str, code: str = "source_git_failed") -> None:
        super().__init__(message)
        self.message, self.code = message, code


@dataclass(frozen=True)
class GitResult:
    default_branch: str
    sha: str
    note: str = ""  # something a person should know (the base branch was reset to the source's, say)


def branch_name_check(name: str) -> str:
    """A branch name as given (stripped), or SourceRefused."""
    name = name.strip()
    if name and not _BRANCH.match(name):
        raise SourceRefused(f"{name[:200]!r} is not a usable branch name.", code="bad_branch")
    return name


def parse_roots(text: str) -> list[Path]:
    """The operator's roots (os.pathsep-separated), as real absolute paths; empty entries are skipped."""
    roots = []
    for entry in text.split(os.pathsep):
        entry = entry.strip()
        if entry and os.path.isabs(entry):
            roots.append(Path(os.path.realpath(entry)))
    return roots


def local_path_check(path: str, roots: list[Path]) -> Path:
    """The real path of `path` (symbolic links resolved) when it lies under one of `roots`; SourceRefused
    otherwise, in the same words whether or not the path exists."""
    if not roots:
        raise SourceRefused(
            f"Local paths are not allowed on this server: the operator has set no {ROOTS_SETTING}.", code="path_refused"
        )
    text = path.strip()
    if not text or len(text) > MAX_PATH_CHARS or "\x00" in text or not os.path.isabs(text):
        raise SourceRefused("Give the local repository as an absolute path on the server.", code="path_refused")
    real = Path(os.path.realpath(text))
    if not any(real == root or real.is_relative_to(root) for root in roots):
        raise SourceRefused(
            f"The path is not under {ROOTS_SETTING}; ask the operator to allow it.", code="path_refused"
        )
    if not real.is_dir():
        raise SourceRefused("There is no directory at that path.", code="path_missing")
    return real


def overall_percent(phase: str, percent: int) -> int:
    low, high = _PHASES.get(phase, (0, 100))
    return low + (high - low) * max(0, min(percent, 100)) // 100


def parse_progress(text: str) -> tuple[str, int] | None:
    """The last phase and percent in a piece of `git clone --progress` output, or None."""
    matches = _PROGRESS.findall(text)
    if not matches:
        return None
    phase, percent = matches[-1]
    return phase, int(percent)


def explain(said: str, *, token_env: str, url: str) -> str:
    """git's complaint, turned into what a person can do about it (said is already scrubbed)."""
    low = said.lower()
    where = f" ({token_env})" if token_env else ""
    if any(s in low for s in ("authentication failed", "could not read username", "401", "403", "access denied")):
        if token_env:
            return (
                f"Authentication failed: check {token_env} on the server (the operator's variable) "
                "and that its token may read the repository."
            )
        return "Authentication failed: the repository needs a token; name an ORKET_SECRET_ variable that holds one."
    if "not found" in low or "does not appear to be a git repository" in low or "404" in low:
        return f"No repository was found at {url}: check the address{where}."
    if "could not resolve host" in low:
        return "The host name could not be resolved from the server."
    if "failed to connect" in low or "connection refused" in low or "timed out" in low:
        return "The server could not connect to the repository's host; is it up and reachable from the server?"
    return f"git said: {said[-800:] or 'nothing'}"


def _run(
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    token: str,
    timeout: float,
    on_progress: Progress | None = None,
) -> tuple[int, str]:
    """Run git, reading its stderr as it comes (progress lines end with CR); the exit code and the
    scrubbed tail of what it said."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    tail = b""
    last_report = 0.0
    watchdog = threading.Timer(timeout, proc.kill)  # a git that hangs silently is stopped too
    watchdog.daemon = True
    watchdog.start()
    try:
        while True:
            chunk = proc.stderr.read1(8192) if hasattr(proc.stderr, "read1") else proc.stderr.read(8192)
            if not chunk:
                break
            tail = (tail + chunk)[-8192:]
            if on_progress is not None and time.monotonic() - last_report >= 0.25:
                found = parse_progress(chunk.decode("utf-8", errors="replace"))
                if found is not None:
                    last_report = time.monotonic()
                    on_progress(overall_percent(*found), found[0])
            if time.monotonic() > deadline:
                proc.kill()
                raise SourceGitFailed(f"git {args[1]} took longer than {int(timeout)} s and was stopped.")
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as error:
        proc.kill()
        raise SourceGitFailed(f"git {args[1]} took longer than {int(timeout)} s and was stopped.") from error
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code < 0 and time.monotonic() >= deadline:
        raise SourceGitFailed(f"git {args[1]} took longer than {int(timeout)} s and was stopped.")
    lines = [line.strip() for line in re.split(r"[\r\n]+", tail.decode("utf-8", errors="replace"))]
    said = "\n".join(line for line in lines if line and not _PROGRESS.search(line))
    return code, scrub(said, token)[-2000:]


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=repo, env=git_env(), capture_output=True, text=True, timeout=300, check=False
    )


def _local_config(repo: Path, default_branch: str) -> None:
    for key, value in (*WORKSPACE_GIT_CONFIG, (BASE_BRANCH_KEY, default_branch)):
        _git(repo, "config", "--local", key, value)


def clone(
    url: str,
    dest: Path,
    *,
    token: str = "",
    token_env: str = "",
    config: dict[str, str] | None = None,
    on_progress: Progress | None = None,
    timeout: float = CLONE_TIMEOUT,
) -> GitResult:
    """Clone `url` (or a local path) into `dest`, which must not exist; its default branch (the
    remote's HEAD) is checked out and becomes the workspace's base branch. An empty repository gets
    a first commit on main. SourceGitFailed with an actionable message; `dest` is removed then."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    env = remote_env(token, config)
    args = ["git", "clone", "--progress", "--origin", "origin", "--no-hardlinks"]
    if not url.startswith(("http://", "https://")):
        args.append("--no-local")
    try:
        code, said = _run(
            [*args, "--", url, str(dest)],
            cwd=dest.parent,
            env=env,
            token=token,
            timeout=timeout,
            on_progress=on_progress,
        )
    except SourceGitFailed:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    if code != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise SourceGitFailed(explain(said, token_env=token_env, url=_shown(url)))
    head = _git(dest, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD").stdout.strip()
    default = head.removeprefix("origin/") if head else ""
    if not default:  # an empty repository: start it the way a project without a source starts
        default = "main"
        _git(dest, "checkout", "--quiet", "--orphan", default)
        _local_config(dest, default)
        _git(dest, "commit", "--quiet", "--allow-empty", "-m", "Initialize the project workspace")
    else:
        _local_config(dest, default)
    sha = _git(dest, "rev-parse", "HEAD").stdout.strip()
    if on_progress is not None:
        on_progress(100, "done")
    return GitResult(default, sha)


def fetch(
    repo: Path,
    *,
    default_branch: str,
    branch: str = "",
    token: str = "",
    token_env: str = "",
    config: dict[str, str] | None = None,
    timeout: float = FETCH_TIMEOUT,
) -> GitResult:
    """Fetch every branch of origin and bring the base branch (and the local `branch`, when it exists)
    up to date with the source's: a
    fast-forward, a merge when Orket merged cards locally, and when those conflict, the source's
    branch wins (the local one is kept as refs/orket/previous/<branch>) and the note says so. The
    caller holds the workspace's lock."""
    env = remote_env(token, config)
    code, said = _run(
        ["git", "fetch", "--prune", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*"],
        cwd=repo,
        env=env,
        token=token,
        timeout=timeout,
    )
    if code != 0:
        url = _git(repo, "remote", "get-url", "origin").stdout.strip()
        raise SourceGitFailed(explain(said, token_env=token_env, url=_shown(url)), code="fetch_failed")
    upstream = f"refs/remotes/origin/{default_branch}"
    if _git(repo, "rev-parse", "--verify", "--quiet", upstream).returncode != 0:
        raise SourceGitFailed(
            f"The source repository has no branch {default_branch} any more; set the source again to clone it afresh.",
            code="fetch_failed",
        )
    note = _update_base(repo, default_branch, upstream)
    extra = f"refs/remotes/origin/{branch}"
    if branch and branch != default_branch and _git(repo, "rev-parse", "--verify", "--quiet", extra).returncode == 0:
        if _git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").returncode == 0:
            note = " ".join(filter(None, [note, _update_base(repo, branch, extra)]))
        _git(repo, "checkout", "--quiet", "--force", default_branch)
    return GitResult(default_branch, _git(repo, "rev-parse", upstream).stdout.strip(), note)


def _update_base(repo: Path, branch: str, upstream: str) -> str:
    local = f"refs/heads/{branch}"
    _git(repo, "checkout", "--quiet", "--force", branch)
    if _git(repo, "merge-base", "--is-ancestor", upstream, local).returncode == 0:
        return ""  # nothing new upstream
    if _git(repo, "merge", "--ff-only", "--quiet", upstream).returncode == 0:
        return ""
    merged = _git(repo, "merge", "--no-ff", "--no-edit", "--no-verify", "-m", f"Merge the source's {branch}", upstream)
    if merged.returncode == 0:
        return f"The source's {branch} was merged into the cards Orket had merged locally."
    _git(repo, "merge", "--abort")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    _git(repo, "update-ref", f"refs/orket/previous/{branch}-{stamp}", local)
    _git(repo, "reset", "--hard", "--quiet", upstream)
    return (
        f"The cards Orket merged locally conflict with the source's {branch}; {branch} now follows the source, "
        f"and the local history is kept as refs/orket/previous/{branch}-{stamp}."
    )


def _shown(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else "the local path"
