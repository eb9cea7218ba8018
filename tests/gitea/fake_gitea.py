"""A Gitea stand-in for tests: a real HTTP server on 127.0.0.1.

It answers the API calls Orket makes with Gitea's paths and JSON shapes (/api/v1/repos/{owner}/{repo},
/pulls, /pulls/{n}, /pulls/{n}/merge, /pulls/{n}/reviews, /issues/{n}/comments, /issues) and records
every call; it serves a real bare git repository through `git http-backend` (CGI), so Orket's pushes
are real; and it sends webhooks the way Gitea does (signed, with Gitea's headers and their X-Gogs-*,
X-GitHub-* and X-Hub-Signature-256 copies) to a URL, in order, from one sender thread. Methods named
like a person's actions (`review`, `merge`, `push_commit`) play the people in Gitea.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import re
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "LC_ALL": "C", "PATH": "/usr/bin:/bin"}


def signed_headers(
    secret: str, body: bytes, *, event: str, event_type: str = "", delivery: str | None = None
) -> dict[str, str]:
    """The headers Gitea sends with a delivery of `body`."""
    delivery = delivery or str(uuid.uuid4())
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    event_type = event_type or event
    return {
        "Content-Type": "application/json",
        "User-Agent": "Go-http-client/1.1",
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Event": event,
        "X-Gitea-Event-Type": event_type,
        "X-Gitea-Signature": signature,
        "X-Gogs-Delivery": delivery,
        "X-Gogs-Event": event,
        "X-Gogs-Event-Type": event_type,
        "X-Gogs-Signature": signature,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "X-GitHub-Event-Type": event_type,
        "X-Hub-Signature-256": f"sha256={signature}",
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Call:
    method: str
    path: str
    json: Any
    authorization: str
    status: int = 0


@dataclass
class Sent:
    event: str
    action: str
    status: int
    answer: Any
    delivery: str


@dataclass
class FakeGitea:
    owner: str = "orket"
    repo: str = "demo"
    token: str = "gitea-test-token"
    bot: str = "orket-bot"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fake-gitea-")))
    hook_url: str = ""
    hook_secret: str = ""

    def __post_init__(self) -> None:
        self.calls: list[Call] = []
        self.sent: list[Sent] = []
        self.pulls: dict[int, dict[str, Any]] = {}
        self.issues: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.fail_next: list[int] = []  # statuses to answer the next API calls with
        self.drop_webhooks = False
        self._number = 0
        self._ids = 100
        self._lock = threading.RLock()
        self._queue: queue.Queue[tuple[str, str, dict[str, Any]] | None] = queue.Queue()
        self._pending = 0
        self.bare = self.root / self.owner / f"{self.repo}.git"
        self.bare.mkdir(parents=True)
        self._git(self.bare, "init", "--quiet", "--bare", "--initial-branch=main")
        self._git(self.bare, "config", "http.receivepack", "true")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._threads = [
            threading.Thread(target=self.server.serve_forever, name="fake-gitea", daemon=True),
            threading.Thread(target=self._send_loop, name="fake-gitea-hooks", daemon=True),
        ]

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> FakeGitea:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self.server.shutdown()
        self.server.server_close()

    # -- state helpers -----------------------------------------------------------------------------------------

    @staticmethod
    def _git(cwd: Path, *args: str, input_: bytes | None = None) -> str:
        done = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, input=input_, capture_output=True, check=True)
        return done.stdout.decode().strip()

    def branch_sha(self, branch: str) -> str:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            cwd=self.bare,
            env=GIT_ENV,
            capture_output=True,
            check=False,
        )
        return done.stdout.decode().strip()

    def _next_number(self) -> int:
        self._number += 1
        return self._number

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def user_json(self, login: str) -> dict[str, Any]:
        return {"id": abs(hash(login)) % 10_000, "login": login, "username": login, "full_name": login, "email": ""}

    def repo_json(self) -> dict[str, Any]:
        return {
            "id": 1,
            "name": self.repo,
            "full_name": f"{self.owner}/{self.repo}",
            "owner": self.user_json(self.owner),
            "private": False,
            "html_url": f"{self.url}/{self.owner}/{self.repo}",
            "clone_url": f"{self.url}/{self.owner}/{self.repo}.git",
            "default_branch": "main",
            "empty": not self.branch_sha("main"),
        }

    def pull(self, number: int) -> dict[str, Any]:
        return self.pulls[number]

    def calls_to(self, method: str, suffix: str) -> list[Call]:
        return [call for call in self.calls if call.method == method and call.path.endswith(suffix)]

    def comment_bodies(self, number: int) -> list[str]:
        return [comment["body"] for comment in self.comments.get(number, [])]

    # -- webhooks ----------------------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            event, event_type, payload = item
            try:
                if self.hook_url and not self.drop_webhooks:
                    body = json.dumps(payload).encode()
                    delivery = str(uuid.uuid4())
                    headers = signed_headers(
                        self.hook_secret, body, event=event, event_type=event_type, delivery=delivery
                    )
                    try:
                        answer = httpx.post(self.hook_url, content=body, headers=headers, timeout=10.0)
                        self.sent.append(
                            Sent(event, str(payload.get("action")), answer.status_code, answer.json(), delivery)
                        )
                    except (httpx.HTTPError, ValueError) as error:
                        self.sent.append(Sent(event, str(payload.get("action")), 0, str(error), delivery))
            finally:
                with self._lock:
                    self._pending -= 1

    def webhook(self, event: str, event_type: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put((event, event_type, payload))

    def wait_sent(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending == 0:
                    return
            time.sleep(0.02)
        raise TimeoutError("webhooks still queued in the fake Gitea")

    def pull_payload(
        self, action: str, number: int, sender: str, review: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "action": action,
            "number": number,
            "pull_request": self.pulls[number],
            "requested_reviewer": None,
            "repository": self.repo_json(),
            "sender": self.user_json(sender),
            "commit_id": "",
            "review": review,
        }

    # -- people's actions --------------------------------------------------------------------------------------

    def review(self, number: int, reviewer: str, state: str, body: str, *, send: bool = True) -> dict[str, Any]:
        """A person submits a review: state APPROVED, REQUEST_CHANGES or COMMENT."""
        with self._lock:
            pull = self.pulls[number]
            review = {
                "id": self._next_id(),
                "user": self.user_json(reviewer),
                "body": body,
                "commit_id": pull["head"]["sha"],
                "state": state,
                "stale": False,
                "official": True,
                "submitted_at": _now(),
                "pull_request_url": pull["html_url"],
            }
            self.reviews.setdefault(number, []).append(review)
        kind = {"APPROVED": "approved", "REQUEST_CHANGES": "rejected", "COMMENT": "comment"}[state]
        event = {"approved": "pull_request_approved", "rejected": "pull_request_rejected"}.get(
            kind, "pull_request_comment"
        )
        if send:
            self.webhook(
                event,
                f"pull_request_review_{kind}",
                self.pull_payload(
                    "reviewed", number, reviewer, {"type": f"pull_request_review_{kind}", "content": body}
                ),
            )
        return review

    def merge(self, number: int, *, by: str, send: bool = True) -> None:
        with self._lock:
            pull = self.pulls[number]
            pull.update(
                state="closed",
                merged=True,
                merged_by=self.user_json(by),
                merged_at=_now(),
                merge_commit_sha=pull["head"]["sha"],
                closed_at=_now(),
            )
        if send:
            self.webhook("pull_request", "pull_request", self.pull_payload("closed", number, by))

    def close(self, number: int, *, by: str, send: bool = True) -> None:
        with self._lock:
            self.pulls[number].update(state="closed", closed_at=_now())
        if send:
            self.webhook("pull_request", "pull_request", self.pull_payload("closed", number, by))

    def push_commit(self, number: int, *, by: str, files: dict[str, str] | None = None) -> str:
        """A person pushes a commit to the pull request's branch (Gitea then sends `synchronized`)."""
        branch = self.pulls[number]["head"]["ref"]
        files = files or {"PERSON.md": "a person's change\n"}
        with tempfile.TemporaryDirectory() as work:
            self._git(Path(work), "clone", "--quiet", "--branch", branch, str(self.bare), "c")
            clone = Path(work) / "c"
            for path, text in files.items():
                (clone / path).write_text(text)
                self._git(clone, "add", path)
            self._git(clone, "-c", f"user.name={by}", "-c", "user.email=p@example.com", "commit", "-q", "-m", "person")
            self._git(clone, "push", "--quiet", "origin", branch)
        return self._after_push(sender=by)

    def _after_push(self, *, sender: str) -> str:
        sha = ""
        for number, pull in list(self.pulls.items()):
            current = self.branch_sha(pull["head"]["ref"])
            if pull["state"] == "open" and current and current != pull["head"]["sha"]:
                with self._lock:
                    pull["head"]["sha"] = current
                    pull["updated_at"] = _now()
                sha = current
                self.webhook("pull_request", "pull_request_sync", self.pull_payload("synchronized", number, sender))
        return sha

    # -- API -----------------------------------------------------------------------------------------------------

    def api(self, method: str, path: str, query: dict[str, list[str]], data: Any) -> tuple[int, Any]:
        prefix = f"/api/v1/repos/{self.owner}/{self.repo}"
        if not path.startswith(prefix):
            return 404, {"message": "repository not found"}
        rest = path[len(prefix) :].rstrip("/")
        if method == "GET" and rest == "":
            return 200, self.repo_json()
        if rest == "/pulls" and method == "GET":
            state = (query.get("state") or ["open"])[0]
            pulls = [p for p in self.pulls.values() if state == "all" or p["state"] == state]
            page, limit = int((query.get("page") or ["1"])[0]), int((query.get("limit") or ["50"])[0])
            return 200, pulls[(page - 1) * limit : page * limit]
        if rest == "/pulls" and method == "POST":
            return self._create_pull(data)
        if rest == "/issues" and method == "POST":
            number = self._next_number()
            issue = {
                "id": self._next_id(),
                "number": number,
                "title": data.get("title"),
                "body": data.get("body"),
                "state": "open",
                "html_url": f"{self.url}/{self.owner}/{self.repo}/issues/{number}",
            }
            self.issues[number] = issue
            return 201, issue
        match = re.fullmatch(r"/issues/(\d+)/comments", rest)
        if match and method == "POST":
            number = int(match.group(1))
            if number not in self.pulls and number not in self.issues:
                return 404, {"message": "issue does not exist"}
            comment = {
                "id": self._next_id(),
                "body": data.get("body", ""),
                "user": self.user_json(self.bot),
                "created_at": _now(),
            }
            self.comments.setdefault(number, []).append(comment)
            return 201, comment
        match = re.fullmatch(r"/pulls/(\d+)(/merge|/reviews)?", rest)
        if not match:
            return 404, {"message": "not found"}
        number, tail = int(match.group(1)), match.group(2) or ""
        if number not in self.pulls:
            return 404, {"message": "pull request does not exist"}
        pull = self.pulls[number]
        if tail == "" and method == "GET":
            return 200, pull
        if tail == "" and method == "PATCH":
            if data.get("state") == "closed" and pull["state"] == "open":
                self.close(number, by=self.bot)
            return 201, pull
        if tail == "/reviews" and method == "GET":
            return 200, self.reviews.get(number, [])
        if tail == "/merge" and method == "POST":
            if pull["state"] != "open":
                return 405, {"message": "pull request is closed"}
            self.merge(number, by=self.bot)
            return 200, None
        return 405, {"message": "method not allowed"}

    def _create_pull(self, data: dict[str, Any]) -> tuple[int, Any]:
        head, base = data.get("head", ""), data.get("base", "main")
        head_sha, base_sha = self.branch_sha(head), self.branch_sha(base)
        if not head_sha or not base_sha:
            return 422, {"message": f"branch {head if not head_sha else base} does not exist"}
        if any(p["head"]["ref"] == head and p["state"] == "open" for p in self.pulls.values()):
            return 409, {"message": "pull request already exists for these targets"}
        with self._lock:
            number = self._next_number()
            pull = {
                "id": self._next_id(),
                "number": number,
                "url": f"{self.url}/{self.owner}/{self.repo}/pulls/{number}",
                "html_url": f"{self.url}/{self.owner}/{self.repo}/pulls/{number}",
                "title": data.get("title", ""),
                "body": data.get("body", ""),
                "user": self.user_json(self.bot),
                "state": "open",
                "merged": False,
                "merged_by": None,
                "merge_commit_sha": None,
                "mergeable": True,
                "head": {"ref": head, "label": head, "sha": head_sha, "repo": self.repo_json()},
                "base": {"ref": base, "label": base, "sha": base_sha, "repo": self.repo_json()},
                "created_at": _now(),
                "updated_at": _now(),
            }
            self.pulls[number] = pull
        self.webhook("pull_request", "pull_request", self.pull_payload("opened", number, self.bot))
        return 201, pull


def _handler(fake: FakeGitea) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {"Content-Type": "application/json"}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            parsed = urlparse(self.path)
            body = self._body()
            if parsed.path.startswith("/api/v1/"):
                self._api(parsed.path, parse_qs(parsed.query), body)
            elif ".git/" in parsed.path:
                self._git(parsed, body)
            else:
                self._reply(404, b'{"message": "not found"}')

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        def _api(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
            authorization = self.headers.get("Authorization", "")
            try:
                data = json.loads(body) if body else None
            except ValueError:
                data = None
            call = Call(self.command, path, data, authorization)
            fake.calls.append(call)
            if fake.fail_next:
                call.status = fake.fail_next.pop(0)
                self._reply(call.status, b'{"message": "injected failure"}')
                return
            if authorization != f"token {fake.token}":
                call.status = 401
                self._reply(401, b'{"message": "token is required"}')
                return
            status, answer = fake.api(self.command, path, query, data or {})
            call.status = status
            self._reply(status, b"" if answer is None else json.dumps(answer).encode())

        def _git(self, parsed: Any, body: bytes) -> None:
            authorization = self.headers.get("Authorization", "")
            expected = "Basic " + base64.b64encode(f"orket:{fake.token}".encode()).decode()
            push = "git-receive-pack" in parsed.path or "service=git-receive-pack" in parsed.query
            if push and authorization != expected:
                self._reply(401, b"authentication required", {"WWW-Authenticate": 'Basic realm="Gitea"'})
                return
            env = {
                **GIT_ENV,
                "GIT_PROJECT_ROOT": str(fake.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": parsed.path,
                "QUERY_STRING": parsed.query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": "orket",
                "REMOTE_ADDR": "127.0.0.1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["HTTP_GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = done.stdout.partition(b"\n\n")
            status, headers = 200, {}
            for line in head.decode(errors="replace").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers[name.strip()] = value.strip()
            self._reply(status, payload, headers)
            if push and self.command == "POST":
                fake._after_push(sender=fake.bot)

    return Handler
