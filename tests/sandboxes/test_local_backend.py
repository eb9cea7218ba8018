"""The local-process backend: what the command can see and do, with bubblewrap and as a plain subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sandboxes.isolation import IsolatedCommand, Limits
from sandboxes.local_backend import PLAIN_ISOLATION, LocalProcessRunner, bwrap_argv
from tests.sandboxes.verification_support import Listener, assert_no_leftovers, require_bwrap

pytestmark = pytest.mark.slow


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "workspace"
    folder.mkdir()
    (folder / "solution.py").write_text("VALUE = 42\n")
    return folder


def python(code: str, workspace: Path, **limits: object) -> IsolatedCommand:
    return IsolatedCommand(
        argv=("python3", "-c", code),
        read_only={workspace: "/workspace"},
        workdir="/workspace",
        limits=Limits(**{"timeout_seconds": 10.0, **limits}),  # type: ignore[arg-type]
    )


@pytest.fixture
def bwrap_runner() -> LocalProcessRunner:
    require_bwrap()
    return LocalProcessRunner(use_bwrap=True)


PROBE = """
import json, os, socket
facts = {"uid": os.getuid(), "gid": os.getgid(), "root": sorted(os.listdir("/")), "env": sorted(os.environ),
         "workspace": sorted(os.listdir("/workspace")), "cwd": os.getcwd()}
try:
    open("/workspace/new.txt", "w").write("x")
    facts["workspace_write"] = "ok"
except OSError as error:
    facts["workspace_write"] = error.__class__.__name__
try:
    open("/tmp/scratch.txt", "w").write("x")
    facts["tmp_write"] = "ok"
except OSError as error:
    facts["tmp_write"] = error.__class__.__name__
try:
    socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=2)
    facts["network"] = "connected"
except OSError as error:
    facts["network"] = error.__class__.__name__
facts["home"] = os.path.exists("/root") or os.path.exists("/home")
facts["data"] = os.path.exists(os.environ["DATA"])
print(json.dumps(facts))
"""


@pytest.fixture
def listener() -> Listener:
    server = Listener()
    yield server
    server.close()


def test_bwrap_sees_only_what_it_is_given(
    bwrap_runner: LocalProcessRunner, workspace: Path, listener: Listener, settings: object
) -> None:
    data_dir = str(Path(os.environ["ORKET_DATA_DIR"]).resolve())
    command = python(PROBE, workspace)
    command = IsolatedCommand(
        argv=command.argv,
        read_only=command.read_only,
        workdir=command.workdir,
        env={"PORT": str(listener.port), "DATA": data_dir},
        limits=command.limits,
    )
    result = bwrap_runner.run(command)
    assert result.exit_code == 0, result.stderr
    facts = json.loads(result.stdout)
    if os.geteuid() == 0:
        assert (facts["uid"], facts["gid"]) == (65534, 65534)
    assert facts["workspace"] == ["solution.py"] and facts["cwd"] == "/workspace"
    assert facts["workspace_write"] in ("OSError", "PermissionError")
    assert facts["tmp_write"] == "ok"
    assert facts["network"] != "connected" and listener.accepted == 0
    assert facts["home"] is False and facts["data"] is False
    assert set(facts["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
                                 "PORT", "DATA", "PWD"}  # fmt: skip
    assert "usr" in facts["root"] and "home" not in facts["root"] and "work" not in facts["root"]
    assert not (workspace / "new.txt").exists()
    assert "no network" in result.isolation and "bubblewrap" in result.isolation


def test_bwrap_argv_has_the_isolation_flags(workspace: Path) -> None:
    argv = bwrap_argv(python("pass", workspace), bwrap="bwrap")
    assert "--die-with-parent" in argv and "--new-session" in argv and "--clearenv" in argv
    assert "--unshare-net" in argv or "--unshare-all" in argv
    assert argv[argv.index("--ro-bind", argv.index(str(workspace)) - 2) + 1] == str(workspace)
    assert "--share-net" not in argv
    assert "--tmpfs" in argv and argv[argv.index("--tmpfs") + 1] == "/tmp"
    assert not any(part in ("/root", "/home") for part in argv)


@pytest.mark.parametrize("use_bwrap", [True, False], ids=["bwrap", "plain"])
def test_timeout_kills_everything_even_escaped_processes(use_bwrap: bool, workspace: Path) -> None:
    if use_bwrap:
        require_bwrap()
    marker = "orket-test-escape-marker"
    code = (
        "import os, time\n"
        "for _ in range(3):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            os.execvp('sleep', ['sleep', '1000'])\n"
        "        time.sleep(1000)\n"
        "time.sleep(1000)\n"
    )
    command = python(f"# {marker}\n" + code, workspace, timeout_seconds=2.0)
    result = LocalProcessRunner(use_bwrap=use_bwrap).run(command)
    assert result.timed_out and result.exit_code is None
    assert 1500 <= result.duration_ms < 8000
    assert_no_leftovers(marker)
    assert_no_leftovers("sleep 1000")


@pytest.mark.parametrize("use_bwrap", [True, False], ids=["bwrap", "plain"])
def test_limits_memory_processes_and_output(use_bwrap: bool, workspace: Path) -> None:
    if use_bwrap:
        require_bwrap()
    runner = LocalProcessRunner(use_bwrap=use_bwrap)
    memory = runner.run(python("x = bytearray(400 * 1024 * 1024)\nprint('allocated')", workspace, memory_mb=128))
    assert memory.exit_code != 0 and "allocated" not in memory.stdout
    assert "MemoryError" in memory.stderr
    if os.geteuid() == 0 or use_bwrap:
        forks = runner.run(
            python(
                "import os, time\nmade = 0\ntry:\n    for _ in range(200):\n        if os.fork() == 0:\n"
                "            time.sleep(30); os._exit(0)\n        made += 1\nexcept OSError as e:\n"
                "    print('refused after', made, type(e).__name__)\n",
                workspace,
                max_processes=8,
                timeout_seconds=5.0,
            )
        )
        assert "refused after" in forks.stdout, forks
        assert int(forks.stdout.split()[2]) < 200
    chatty = runner.run(python("import sys\nfor _ in range(2000): sys.stdout.write('x' * 1000)", workspace,
                               max_output_bytes=10_000))  # fmt: skip
    assert chatty.output_truncated and len(chatty.stdout) == 10_000


def test_plain_subprocess_says_plainly_what_it_is(workspace: Path) -> None:
    runner = LocalProcessRunner(use_bwrap=False)
    assert runner.describe() == PLAIN_ISOLATION
    result = runner.run(python("import os, sys; print(sorted(os.environ)); print(open('solution.py').read())",
                               workspace))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "VALUE = 42" in result.stdout
    assert "ORKET_DATA_DIR" not in result.stdout and "DJANGO_SETTINGS_MODULE" not in result.stdout
    assert result.isolation.startswith("plain subprocess: no filesystem or network isolation")
    if os.geteuid() == 0:
        wrote = runner.run(python("open('solution.py', 'w').write('changed')", workspace))
        assert wrote.exit_code != 0
    assert (workspace / "solution.py").read_text() == "VALUE = 42\n"


def test_bwrap_as_an_ordinary_user(tmp_path: Path) -> None:
    """Orket not running as root: bubblewrap runs unprivileged in a user namespace, same view, same limits."""
    require_bwrap()
    repo = Path(__file__).resolve().parents[2]
    system_python = Path("/usr/bin/python3")
    if os.geteuid() != 0 or not system_python.exists() or not os.access(repo, os.R_OK):
        pytest.skip("needs root to become another user, and /usr/bin/python3")
    folder = Path(tempfile.mkdtemp(prefix="orket-user-ws-"))
    try:
        folder.chmod(0o755)
        (folder / "a.py").write_text("print('hello')\n")
        (folder / "a.py").chmod(0o644)
        script = (
            "import json, sys\n"
            "from pathlib import Path\n"
            "from sandboxes.isolation import IsolatedCommand, Limits\n"
            "from sandboxes.local_backend import LocalProcessRunner\n"
            "runner = LocalProcessRunner(use_bwrap=True)\n"
            'code = \'import os; print(os.getuid(), sorted(os.listdir("/")), os.listdir("/workspace"))\'\n'
            f"ws = Path({str(folder)!r})\n"
            "seen = runner.run(IsolatedCommand(argv=('python3', '-c', code), read_only={ws: '/workspace'},\n"
            "                  workdir='/workspace', limits=Limits(timeout_seconds=10)))\n"
            "slept = runner.run(IsolatedCommand(argv=('python3', '-c', 'import os, time; os.fork(); time.sleep(60)'),\n"
            "                   read_only={}, workdir='/tmp', limits=Limits(timeout_seconds=1)))\n"
            "print(json.dumps([seen.exit_code, seen.stdout, seen.isolation, slept.timed_out]))\n"
        )
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(system_python), "-c", script],
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": str(repo)},
            cwd="/tmp",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if "Permission denied" in done.stderr and "sandboxes" in done.stderr:
            pytest.skip("the repository is not readable by uid 65534 here")
        assert done.returncode == 0, done.stderr
        exit_code, stdout, isolation, timed_out = json.loads(done.stdout.strip().splitlines()[-1])
        assert exit_code == 0 and stdout.startswith("65534 ") and "'workspace'" in stdout and "['a.py']" in stdout
        assert "user namespace" in isolation
        assert timed_out is True
    finally:
        shutil.rmtree(folder, ignore_errors=True)
