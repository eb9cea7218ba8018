"""Pushing a card branch to (and fetching it back from) the Gitea repository over HTTP. No Django.

The token travels as an HTTP header handed to git through GIT_CONFIG_* environment variables, never
in the remote URL or on the command line (both show up in process lists and in git's messages), and
it is scrubbed from anything git prints before that text is logged or shown.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from agents.workspaces import GIT_TIMEOUT, git_env


class PushFailed(Exception):
    """git push or fetch failed; the message is safe to show (no token)."""


def remote_url(base_url: str, owner: str, repo: str) -> str:
    return f"{base_url.rstrip('/')}/{owner}/{repo}.git"


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def _env(token: str, config: dict[str, str] | None = None) -> dict[str, str]:
    """git's environment: the token as an HTTP header, and `config` (the outbound policy's pinning of
    the remote's addresses); no proxy, which would route around that pinning."""
    env = {key: value for key, value in git_env().items() if key not in PROXY_VARIABLES}
    settings = dict(config or {})
    if token:
        basic = base64.b64encode(f"orket:{token}".encode()).decode()
        settings["http.extraHeader"] = f"Authorization: Basic {basic}"
    for index, (key, value) in enumerate(settings.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    if settings:
        env["GIT_CONFIG_COUNT"] = str(len(settings))
    return env


def _scrub(text: str, token: str) -> str:
    if token:
        text = text.replace(token, "***")
        text = text.replace(base64.b64encode(f"orket:{token}".encode()).decode(), "***")
    return text


def _git(repo: Path, token: str, *args: str, config: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=repo,
            env=_env(token, config),
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PushFailed(f"git {args[0]} could not run: {_scrub(str(error), token)}") from error
    return done


def local_sha(repo: Path, ref: str) -> str:
    done = _git(repo, "", "rev-parse", "--verify", ref)
    if done.returncode != 0:
        raise PushFailed(f"There is no {ref} in the workspace.")
    return done.stdout.strip()


def push(
    repo: Path,
    url: str,
    token: str,
    *,
    local_ref: str,
    remote_branch: str,
    force: bool = False,
    config: dict[str, str] | None = None,
) -> str:
    """Push `local_ref` to `remote_branch`; the sha pushed. Raises PushFailed with git's reason.
    `config`: extra git configuration for the connection (see agents.outbound)."""
    sha_done = _git(repo, token, "rev-parse", "--verify", local_ref)
    if sha_done.returncode != 0:
        raise PushFailed(f"There is no {local_ref} to push in the workspace.")
    sha = sha_done.stdout.strip()
    refspec = f"{'+' if force else ''}{sha}:refs/heads/{remote_branch}"
    done = _git(repo, token, "push", "--porcelain", url, refspec, config=config)
    if done.returncode != 0:
        said = _scrub((done.stderr or done.stdout).strip()[-1500:], token)
        raise PushFailed(f"git push of {local_ref} to {remote_branch} failed: {said}")
    return sha


def fetch(repo: Path, url: str, token: str, *, remote_branch: str, config: dict[str, str] | None = None) -> str:
    """Fetch `remote_branch`; the sha it points at (left in FETCH_HEAD)."""
    done = _git(repo, token, "fetch", "--quiet", url, f"refs/heads/{remote_branch}", config=config)
    if done.returncode != 0:
        said = _scrub((done.stderr or done.stdout).strip()[-1500:], token)
        raise PushFailed(f"git fetch of {remote_branch} failed: {said}")
    return _git(repo, token, "rev-parse", "FETCH_HEAD").stdout.strip()


def fast_forward(worktree: Path, sha: str) -> bool:
    """Move the worktree's branch to `sha` when that is a fast-forward; False when it is not."""
    done = _git(worktree, "", "merge", "--ff-only", "--quiet", sha)
    return done.returncode == 0


def auth_env(token: str, config: dict[str, str] | None = None) -> dict[str, str]:
    """git's environment for talking to a remote with `token` (may be empty) and `config`."""
    return _env(token, config)


def scrub_token(text: str, token: str) -> str:
    """`text` without `token` or the header made from it."""
    return _scrub(text, token)
