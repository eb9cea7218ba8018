"""A real git HTTP server for tests and benchmarks: `git http-backend` run as CGI behind a small
threaded WSGI server on 127.0.0.1, optionally requiring a token (HTTP Basic, as Orket sends it).

    with GitHttpServer(root, token="s3cret") as server:
        url = server.url("app.git")          # http://127.0.0.1:<port>/app.git

Plus helpers that make an upstream repository with a chosen default branch and push commits to it.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Upstream Person",
    "GIT_AUTHOR_EMAIL": "person@example.com",
    "GIT_COMMITTER_NAME": "Upstream Person",
    "GIT_COMMITTER_EMAIL": "person@example.com",
}


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class GitHttpServer:
    def __init__(self, root: Path, token: str = "", pack_delay: float = 0.0) -> None:
        self.root = Path(root)
        self.token = token
        self.pack_delay = pack_delay  # seconds before answering a pack request, so a clone takes a while
        self.requests: list[str] = []
        self.authorizations: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, name: str) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}/{name}"

    def __enter__(self) -> GitHttpServer:
        self._server = make_server("127.0.0.1", 0, self._app, server_class=_Server, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.requests.append(f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}")
        given = str(environ.get("HTTP_AUTHORIZATION", ""))
        self.authorizations.append(given)
        if self.token:
            expected = "Basic " + base64.b64encode(f"orket:{self.token}".encode()).decode()
            if given != expected:
                start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Length", "0")])
                return [b""]
        if self.pack_delay and environ["REQUEST_METHOD"] == "POST":
            time.sleep(self.pack_delay)
        env = {key: value for key, value in environ.items() if isinstance(value, str) and key.isupper()}
        env.update({"GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1", "PATH": os.environ["PATH"]})
        env.update({k: v for k, v in GIT_ENV.items() if k.startswith("GIT_CONFIG")})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        proc = subprocess.Popen(["git", "http-backend"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(body)
        proc.stdin.close()
        status, headers = "200 OK", []
        while True:
            line = proc.stdout.readline().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            else:
                headers.append((name.strip(), value.strip()))
        start_response(status, headers)
        return _stream(proc)


def _stream(proc: subprocess.Popen[bytes]) -> Iterator[bytes]:
    assert proc.stdout is not None
    try:
        while chunk := proc.stdout.read(65536):
            yield chunk
    finally:
        proc.stdout.close()
        proc.wait(timeout=60)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def upstream_repository(root: Path, name: str, branch: str = "trunk", files: dict[str, str] | None = None) -> Path:
    """A bare repository root/name with one commit on `branch`, its HEAD (default branch), and a second
    branch `release` with one more commit."""
    bare = root / name
    bare.parent.mkdir(parents=True, exist_ok=True)
    git(bare.parent, "init", "--quiet", "--bare", f"--initial-branch={branch}", bare.name)
    commit_upstream(bare, branch, files or {"README.md": "upstream project\n"}, "Initial upstream commit")
    work = root / f"{name}.work"
    git(work, "checkout", "--quiet", "-b", "release")
    (work / "RELEASE.md").write_text("release notes\n")
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "-m", "Prepare the release")
    git(work, "push", "--quiet", "origin", "release")
    git(work, "checkout", "--quiet", branch)
    return bare


def commit_upstream(bare: Path, branch: str, files: dict[str, str], message: str) -> str:
    """Commit `files` on `branch` of the bare repository (through a working clone beside it); the sha."""
    work = bare.parent / f"{bare.name}.work"
    if not work.exists():
        git(bare.parent, "clone", "--quiet", str(bare), work.name)
        git(work, "checkout", "--quiet", "-B", branch)
    else:
        git(work, "fetch", "--quiet", "origin")
        git(work, "checkout", "--quiet", branch)
        git(work, "reset", "--quiet", "--hard", f"origin/{branch}")
    for path, text in files.items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "-m", message)
    git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
    return git(work, "rev-parse", "HEAD")
