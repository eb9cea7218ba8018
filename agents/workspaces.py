"""Git-backed project workspaces: one repository per project, one worktree per card.

    ws = ProjectWorkspace(project_workspace_root(data_dir, project.id))
    ws.ensure()                                   # root/repo: a git repository on main with an initial commit
    path = ws.card_worktree(card.id)              # root/cards/<id>: a worktree on branch card/<id>
    ...                                           # tools write files under `path`
    sha = ws.commit_card(card.id, seat="senior_developer", message="add the parser")  # None when nothing changed
    diff = ws.card_diff(card.id)                  # the card branch against main, capped
    ws.merge_card(card.id)                        # --no-ff into main; MergeConflict leaves main clean

Git runs through its command line with the user's global and system configuration ignored, hooks switched off
and the identity set in the repository's own config. Operations that change the shared repository (creating
worktrees, committing, merging) hold a per-project file lock (fcntl.flock on root/.lock), because Celery workers in
different processes work on the same project. No Django here.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from agents import phase_timer

ORKET_NAME = "Orket"
ORKET_EMAIL = "orket@localhost"
# Every workspace repository's local git settings: Orket's identity, no signing, no hooks, no
# background gc, no line-ending rewrites.
WORKSPACE_GIT_CONFIG: tuple[tuple[str, str], ...] = (
    ("user.name", ORKET_NAME),
    ("user.email", ORKET_EMAIL),
    ("commit.gpgsign", "false"),
    ("tag.gpgsign", "false"),
    ("core.hooksPath", os.devnull),
    ("gc.auto", "0"),
    ("core.autocrlf", "false"),
    ("merge.renames", "true"),
)
MAIN = "main"
BASE_BRANCH_KEY = "orket.basebranch"  # set in a cloned source repository: the branch cards start from
CARD_BASE_KEY = "orketbase"  # branch.card/<id>.orketbase: the ref the card's branch started from
MAX_DIFF_BYTES = 200 * 1024
GIT_TIMEOUT = 120.0
_CARD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# a branch, a sha, or either followed by ^ / ~N: never an option, never a range
_REF = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_./-]{0,199}(\^|~[0-9]{1,4})?$")
_SEAT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class WorkspaceError(Exception):
    """A git operation failed; the message says which and why."""


class MergeConflict(WorkspaceError):
    def __init__(self, message: str, files: list[str]) -> None:
        super().__init__(message)
        self.files = files


class WorkspaceBusy(WorkspaceError):
    """The project's lock could not be taken in time."""


class RawDiff(NamedTuple):
    numstat: str  # git diff --numstat -z: every changed file with its counts
    patch: str  # the unified diff, possibly cut
    cut: bool  # the patch was cut at the size limit


class LogEntry(NamedTuple):
    sha: str
    author: str  # the author's name (a seat name, or "Orket")
    subject: str


def project_workspace_root(data_dir: Path, project_id: int) -> Path:
    """Where a project's repository and card worktrees live, under the installation's data folder."""
    return Path(data_dir) / "workspaces" / f"project-{project_id}"


def git_env() -> dict[str, str]:
    """The environment git runs with: no global or system config, no prompts, fixed locale."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
    )
    return env


class ProjectWorkspace:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.repo = self.root / "repo"
        self.cards = self.root / "cards"
        self.lock_path = self.root / ".lock"
        self._base: str | None = None
        # Set once this object found (or made) the repository with its base branch: a turn's later
        # commits skip asking git again, while the repository is still there.
        self._ready = False

    def base_branch(self) -> str:
        """The branch cards start from and merge into: main, or a cloned source's default branch."""
        if self._base is None:
            found = ""
            if (self.repo / ".git").is_dir():
                found = self._git(self.repo, "config", "--local", "--get", BASE_BRANCH_KEY, check=False).stdout.strip()
            self._base = found or MAIN
        return self._base

    # -- locking ---------------------------------------------------------------------------------------------

    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the project's lock (across processes). With `timeout`, raise WorkspaceBusy when it is not free."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise WorkspaceBusy(f"the workspace at {self.root} is busy (lock held)") from None
                        time.sleep(0.01)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # -- setup -----------------------------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create root/repo as a git repository on main with an initial commit, unless it exists."""
        with self.lock():
            self._ensure_locked()

    def _ensure_locked(self) -> None:
        if (self.repo / ".git").is_dir() and (self._ready or self._has_main()):
            self._ready = True
            return
        if self.base_branch() != MAIN:
            raise WorkspaceError(f"the workspace's base branch {self.base_branch()} is missing from {self.repo}")
        self.repo.mkdir(parents=True, exist_ok=True)
        if not (self.repo / ".git").is_dir():
            self._git(self.repo, "init", "--quiet", f"--initial-branch={MAIN}")
        for key, value in WORKSPACE_GIT_CONFIG:
            self._git(self.repo, "config", "--local", key, value)
        if not self._has_main():
            self._git(self.repo, "commit", "--quiet", "--allow-empty", "-m", "Initialize the project workspace")

    def _has_main(self) -> bool:
        done = self._git(self.repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{self.base_branch()}", check=False)
        return done.returncode == 0

    # -- cards -----------------------------------------------------------------------------------------------

    def card_path(self, card_id: int | str) -> Path:
        return self.cards / _card(card_id)

    def card_branch(self, card_id: int | str) -> str:
        return f"card/{_card(card_id)}"

    def card_worktree(self, card_id: int | str, *, start: str = "") -> Path:
        """The card's worktree at root/cards/<id> on branch card/<id>, created when absent from the branch
        `start` (the source's remote-tracking branch of that name, else a local one) or the base branch."""
        path = self.card_path(card_id)
        branch = self.card_branch(card_id)
        with self.lock():
            self._ensure_locked()
            if (path / ".git").exists():
                return path
            self.cards.mkdir(parents=True, exist_ok=True)
            self._git(self.repo, "worktree", "prune")
            if path.exists() and any(path.iterdir()):
                raise WorkspaceError(f"{path} exists and is not a worktree of {self.repo}")
            if self._branch_exists(branch):
                self._git(self.repo, "worktree", "add", "--quiet", str(path), branch)
            else:
                origin = self.start_ref(start)
                self._git(self.repo, "worktree", "add", "--quiet", "--no-track", "-b", branch, str(path), origin)
                self._git(self.repo, "config", "--local", f"branch.{branch}.{CARD_BASE_KEY}", origin)
        return path

    def start_ref(self, start: str = "") -> str:
        """The ref a new card branch starts from: the local branch `start` (made from the source's branch of
        that name the first time), or the base branch when `start` is empty. Call it holding the lock.
        Cards merge back into the branch they started from, so later cards of an epic build on earlier ones."""
        if not start or start == self.base_branch():
            return f"refs/heads/{self.base_branch()}"
        if self._branch_exists(start):
            return f"refs/heads/{start}"
        fetched = f"refs/remotes/origin/{start}"
        if self._git(self.repo, "rev-parse", "--verify", "--quiet", fetched, check=False).returncode == 0:
            self._git(self.repo, "branch", "--quiet", "--no-track", start, fetched)
            return f"refs/heads/{start}"
        raise WorkspaceError(f"the base branch {start} does not exist in the workspace's repository")

    def card_base(self, card_id: int | str) -> str:
        """The ref the card's branch is compared with: where it started, or the base branch."""
        branch = self.card_branch(card_id)
        done = self._git(self.repo, "config", "--local", "--get", f"branch.{branch}.{CARD_BASE_KEY}", check=False)
        return done.stdout.strip() or self.base_branch()

    def commit_card(self, card_id: int | str, *, seat: str, message: str) -> str | None:
        """Commit every change in the card's worktree as `seat`; the sha, or None when nothing changed."""
        if not _SEAT.match(seat):
            raise ValueError(f"{seat!r} is not a usable seat name for a commit author")
        card = _card(card_id)
        path = self.card_worktree(card_id)
        subject = " ".join(message.split()) or "work on the card"
        prefix = f"card {card}:"
        text = subject if subject.startswith(prefix) else f"{prefix} {subject}"
        with self.lock():
            self._git(path, "add", "--all")
            staged = self._git(path, "diff", "--cached", "--quiet", check=False)
            if staged.returncode == 0:
                return None
            self._git(
                path,
                "commit",
                "--quiet",
                "--no-verify",
                f"--author={seat} <{seat}@orket.local>",
                "-m",
                text,
            )
            return self._git(path, "rev-parse", "HEAD").stdout.strip()

    def card_diff(self, card_id: int | str, *, path: str = "", max_bytes: int = MAX_DIFF_BYTES) -> str:
        """The card branch's changes since it left its base (base...card/<id>), limited to `path` when
        given, cut at `max_bytes` with a note."""
        branch = self.card_branch(card_id)
        if not self._branch_exists(branch):
            return ""
        base = self.card_base(card_id)
        args = ["git", "diff", "--no-ext-diff", "--no-textconv", "--no-color", f"{base}...{branch}"]
        if path:
            args += ["--", f":(literal){path}"]
        with (
            phase_timer.phase("git"),
            subprocess.Popen(
                args, cwd=self.repo, env=git_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            ) as proc,
        ):
            assert proc.stdout is not None
            data = proc.stdout.read(max_bytes + 1)
            cut = len(data) > max_bytes
            if cut:
                proc.kill()
            else:
                proc.wait(timeout=GIT_TIMEOUT)
        if not cut and proc.returncode != 0:
            raise WorkspaceError(f"git diff of {branch} against {base} failed")
        text = data[:max_bytes].decode("utf-8", errors="replace")
        if cut:
            text = text.rsplit("\n", 1)[0] + f"\n[diff cut at {max_bytes // 1024} KB]\n"
        return text

    def base_ref_for(self, card_id: int | str) -> str:
        """The branch a card's work is compared with and merged into: the branch it started from (the
        base branch, or its epic's base branch in a source repository)."""
        if not (self.repo / ".git").is_dir():
            return MAIN
        return self.card_base(card_id).removeprefix("refs/heads/")

    def has_ref(self, ref: str) -> bool:
        """Whether `ref` (a branch, a sha, sha^) names a commit of the repository."""
        if not _REF.match(ref) or not (self.repo / ".git").is_dir():
            return False
        done = self._git(self.repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return done.returncode == 0

    def merged_from(self, base: str, head: str) -> str | None:
        """When `head` was merged into `base` (and has no commit since), the base's commit just before that
        merge, so that the work can still be compared with what it started from; None otherwise."""
        for ref in (base, head):
            if not _REF.match(ref):
                raise WorkspaceError(f"{ref!r} is not a usable git reference")
        ancestor = self._git(self.repo, "merge-base", "--is-ancestor", head, base, check=False)
        if ancestor.returncode != 0:
            return None
        tip = self._git(self.repo, "rev-parse", "--verify", f"{head}^{{commit}}").stdout.strip()
        merges = self._git(
            self.repo, "log", "--first-parent", "--merges", "-n", "1000", "--format=%H %P", base, "--"
        ).stdout
        for line in merges.splitlines():
            _sha, first, *others = line.split()
            if tip in others:
                return first
        return None

    def diff(
        self, base: str, head: str, *, merge_base: bool = True, path: str = "", max_bytes: int = MAX_DIFF_BYTES
    ) -> RawDiff:
        """The changes from `base` to `head` (from their merge base, `base...head`, unless `merge_base` is
        False): git's --numstat -z listing, complete, and the patch, cut at `max_bytes`. Renames are found."""
        for ref in (base, head):
            if not _REF.match(ref):
                raise WorkspaceError(f"{ref!r} is not a usable git reference")
        spec = f"{base}...{head}" if merge_base else f"{base}..{head}"
        options = ["--no-ext-diff", "--no-textconv", "--no-color", "--find-renames", "--end-of-options", spec]
        limit = ["--", f":(literal){path}"] if path else ["--"]
        numstat = self._git(self.repo, "diff", "--numstat", "-z", *options, *limit).stdout
        patch, cut = self._read_capped(["git", "diff", *options, *limit], max_bytes)
        return RawDiff(numstat=numstat, patch=patch, cut=cut)

    def _read_capped(self, args: list[str], max_bytes: int) -> tuple[str, bool]:
        """A git command's output up to `max_bytes` (cut at a line's end), and whether it was cut."""
        with (
            phase_timer.phase("git"),
            subprocess.Popen(
                args, cwd=self.repo, env=git_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            ) as proc,
        ):
            assert proc.stdout is not None
            data = proc.stdout.read(max_bytes + 1)
            cut = len(data) > max_bytes
            if cut:
                proc.kill()
            proc.wait(timeout=GIT_TIMEOUT)
        if not cut and proc.returncode != 0:
            raise WorkspaceError(f"{' '.join(args[:2])} failed in {self.repo}")
        text = data[:max_bytes].decode("utf-8", errors="replace")
        return (text.rsplit("\n", 1)[0] if cut else text), cut

    def merge_card(self, card_id: int | str) -> str:
        """Merge card/<id> into the base branch (--no-ff); the merge commit's sha. MergeConflict leaves
        the base branch clean."""
        card = _card(card_id)
        branch = self.card_branch(card_id)
        with self.lock():
            self._ensure_locked()
            main = self.card_base(card_id).removeprefix("refs/heads/")
            if not self._branch_exists(branch):
                raise WorkspaceError(f"card {card} has no branch {branch} to merge")
            self._git(self.repo, "checkout", "--quiet", main)
            done = self._git(
                self.repo,
                "merge",
                "--no-ff",
                "--no-edit",
                "--no-verify",
                "-m",
                f"card {card}: merge {branch} into {main}",
                branch,
                check=False,
            )
            if done.returncode != 0:
                files = self._git(self.repo, "diff", "--name-only", "--diff-filter=U", check=False).stdout.split()
                self._git(self.repo, "merge", "--abort", check=False)
                self._git(self.repo, "reset", "--hard", "--quiet", "HEAD", check=False)
                listed = ", ".join(files) if files else "see git's message"
                detail = (done.stdout + done.stderr).strip()[-2000:]
                raise MergeConflict(
                    f"card {card} cannot be merged into {main}: conflicting changes in {listed}. "
                    f"{main} is unchanged; update the card's branch and try again. ({detail})",
                    files,
                )
            return self._git(self.repo, "rev-parse", "HEAD").stdout.strip()

    def log(self, branch: str = "") -> list[LogEntry]:
        """The commits of `branch` (the base branch by default), newest first: (sha, author name, subject)."""
        done = self._git(self.repo, "log", "--format=%H%x00%an%x00%s", branch or self.base_branch(), "--")
        entries = []
        for line in done.stdout.splitlines():
            sha, author, subject = line.split("\x00", 2)
            entries.append(LogEntry(sha, author, subject))
        return entries

    def is_clean(self, path: Path | None = None) -> bool:
        """Whether a worktree (the main repository by default) has no uncommitted changes."""
        done = self._git(path or self.repo, "status", "--porcelain")
        return done.stdout.strip() == ""

    # -- helpers ---------------------------------------------------------------------------------------------

    def _branch_exists(self, branch: str) -> bool:
        done = self._git(self.repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
        return done.returncode == 0

    def _git(self, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            with phase_timer.phase("git"):
                done = subprocess.run(
                    ["git", *args],
                    cwd=cwd,
                    env=git_env(),
                    capture_output=True,
                    text=True,
                    timeout=GIT_TIMEOUT,
                    check=False,
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WorkspaceError(f"git {args[0]} could not run in {cwd}: {exc}") from exc
        if check and done.returncode != 0:
            said = (done.stderr or done.stdout).strip()[-2000:]
            raise WorkspaceError(f"git {' '.join(args[:2])} failed in {cwd}: {said}")
        return done


def _card(card_id: int | str) -> str:
    text = str(card_id)
    if isinstance(card_id, bool) or not _CARD_ID.match(text):
        raise ValueError(f"{card_id!r} is not a usable card id (letters, digits, '_' and '-')")
    return text
