"""The source repository's rules without Django: local roots, branch names, progress parsing, and
what git's complaints become."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.sources import gitops

ROOT = Path(__file__).resolve().parents[2]


def test_gitops_imports_without_django() -> None:
    code = (
        "import sys\nimport agents.sources.gitops\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_local_paths_must_resolve_under_a_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "app").mkdir(parents=True)
    outside.mkdir()
    (root / "link-out").symlink_to(outside)
    (root / "link-in").symlink_to(root / "app")
    roots = gitops.parse_roots(os.pathsep.join(["", "relative/ignored", str(root)]))
    assert roots == [root.resolve()]
    assert gitops.local_path_check(str(root / "app"), roots) == (root / "app").resolve()
    assert gitops.local_path_check(str(root / "link-in"), roots) == (root / "app").resolve()
    for bad in (str(outside), str(root / "link-out"), str(root / ".." / "outside"), "app", "", "/x\x00y"):
        with pytest.raises(gitops.SourceRefused) as refused:
            gitops.local_path_check(bad, roots)
        assert refused.value.code == "path_refused"
    with pytest.raises(gitops.SourceRefused, match="no ORKET_LOCAL_REPO_ROOTS"):
        gitops.local_path_check(str(root / "app"), [])
    with pytest.raises(gitops.SourceRefused) as missing:
        gitops.local_path_check(str(root / "nothing"), roots)
    assert missing.value.code == "path_missing"


@pytest.mark.parametrize("name", ["trunk", "release/2.0", "feature-x_1", ""])
def test_usable_branch_names(name: str) -> None:
    assert gitops.branch_name_check(name) == name


@pytest.mark.parametrize("name", ["../etc", "-x", "/a", "a/", "a..b", "a.lock", "a b", "a@{1}", "x" * 201, "a//b"])
def test_refused_branch_names(name: str) -> None:
    with pytest.raises(gitops.SourceRefused):
        gitops.branch_name_check(name)


def test_progress_is_read_from_git_output() -> None:
    text = "Receiving objects:  12% (120/1000)\rReceiving objects:  45% (450/1000), 1.2 MiB | 3 MiB/s\r"
    assert gitops.parse_progress(text) == ("Receiving objects", 45)
    assert gitops.parse_progress("Cloning into 'x'...\n") is None
    assert gitops.overall_percent("Receiving objects", 50) == 45
    assert gitops.overall_percent("Updating files", 100) == 100
    assert gitops.overall_percent("Counting objects", 0) == 0


def test_complaints_become_what_to_do() -> None:
    said = "fatal: Authentication failed for 'http://127.0.0.1/app.git/'"
    assert gitops.explain(said, token_env="ORKET_SECRET_X", url="u").startswith(
        "Authentication failed: check ORKET_SECRET_X"
    )
    assert "needs a token" in gitops.explain("fatal: could not read Username", token_env="", url="u")
    assert "No repository was found at u" in gitops.explain("fatal: repository 'u' not found", token_env="", url="u")
    assert "could not connect" in gitops.explain("Failed to connect to 127.0.0.1 port 9", token_env="", url="u")


def test_a_clone_that_hangs_is_stopped_at_its_time_limit(tmp_path: Path) -> None:
    from tests.agents.git_http import GitHttpServer, upstream_repository

    upstream_repository(tmp_path / "served", "app.git")
    with (
        GitHttpServer(tmp_path / "served", pack_delay=4.0) as server,
        pytest.raises(gitops.SourceGitFailed, match="took longer than 1 s"),
    ):
        gitops.clone(server.url("app.git"), tmp_path / "clone", timeout=1.0)
    assert not (tmp_path / "clone").exists()
