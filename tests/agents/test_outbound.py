"""The pure rules of agents.outbound and agents.secret_variables, without a database: which hosts the
server may connect to, which variables may hold a secret, and the enforcement on connect (a real
socket server and real git over HTTP, with a resolver the test controls for DNS tricks)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents import outbound, secret_variables
from agents.gitea import git_remote
from agents.outbound import OutboundPolicy, OutboundRefused, Rule, url_target
from tests.gitea.fake_gitea import GIT_ENV, FakeGitea

DEFAULT = OutboundPolicy.parse(outbound.DEFAULT_OUTBOUND_HOSTS)


def resolver_of(table: dict[str, list[str]]) -> Any:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"{host}: unknown host")
        return table[host]

    return resolve


# -- secret variables ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ORKET_SECRET_GITEA_TOKEN", "ORKET_SECRET_OPENAI_KEY", "ORKET_SECRET_1"])
def test_marked_names_are_allowed(name: str) -> None:
    assert secret_variables.secret_variable_allowed(name)
    assert secret_variables.secret_variable_check(f" {name} ") == name
    assert secret_variables.secret_variable_read(name, {name: "value"}) == "value"


@pytest.mark.parametrize(
    "name",
    ["SECRET_KEY", "DATABASE_URL", "ORKET_ADMIN_PASSWORD", "ORKET_SECRET_", "orket_secret_x", "ORKET_SECRET_A-B", "X"],
)
def test_other_names_are_refused_by_writers_and_readers_alike(name: str) -> None:
    assert not secret_variables.secret_variable_allowed(name)
    with pytest.raises(secret_variables.SecretVariableRefused) as written:
        secret_variables.secret_variable_check(name)
    with pytest.raises(secret_variables.SecretVariableRefused) as read_set:
        secret_variables.secret_variable_read(name, {name: "the value"})
    with pytest.raises(secret_variables.SecretVariableRefused) as read_unset:
        secret_variables.secret_variable_read(name, {})
    assert written.value.message == read_set.value.message == read_unset.value.message  # existence never told
    assert "the value" not in read_set.value.message


def test_an_empty_name_means_none() -> None:
    assert secret_variables.secret_variable_check("  ") == ""


def test_the_pure_modules_import_without_django() -> None:
    code = (
        "import sys\n"
        "import agents.outbound, agents.secret_variables\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not loaded, loaded\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# -- the list of allowed hosts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "rule"),
    [
        ("gitea.example.com", Rule(name="gitea.example.com")),
        ("Gitea.Example.COM.", Rule(name="gitea.example.com")),
        ("gitea:3000", Rule(name="gitea", port=3000)),
        ("10.1.2.3", Rule(network=ipaddress.ip_network("10.1.2.3/32"))),
        ("10.1.2.3:8080", Rule(network=ipaddress.ip_network("10.1.2.3/32"), port=8080)),
        ("10.0.0.0/8", Rule(network=ipaddress.ip_network("10.0.0.0/8"))),
        ("::1", Rule(network=ipaddress.ip_network("::1/128"))),
        ("[fd00::5]:3000", Rule(network=ipaddress.ip_network("fd00::5/128"), port=3000)),
        ("fd00::/8", Rule(network=ipaddress.ip_network("fd00::/8"))),
    ],
)
def test_entries_of_the_list(entry: str, rule: Rule) -> None:
    assert Rule.parse(entry) == rule


@pytest.mark.parametrize("entry", ["http://gitea", "gitea:http", "gitea:0", "gitea:70000", "a b", "10.0.0.0/33", "*"])
def test_entries_that_are_not_hosts_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        OutboundPolicy.parse([entry])


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "http://user:pass@127.0.0.1/",
        "http://127.0.0.1@evil.example/",
        "http://evil.example\\@127.0.0.1/",
        "http://127.0.0.1 /",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:/",
        "http://%31%32%37.0.0.1/",
        "http://[not-an-address]/",
        "http:///path",
    ],
)
def test_urls_that_parsers_could_read_differently_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused):
        url_target(url)


def test_url_targets() -> None:
    assert url_target("https://Gitea.Example.com/x") == outbound.Target("https", "gitea.example.com", 443, None)
    assert url_target("http://127.0.0.1:3000").address == ipaddress.ip_address("127.0.0.1")
    assert url_target("http://[::1]:8080/").port == 8080
    assert url_target("http://[::ffff:127.0.0.1]/").host == "127.0.0.1"


def test_the_default_allows_loopback_only() -> None:
    for url in ("http://127.0.0.1:3000", "http://127.9.9.9/", "http://[::1]:11434", "http://localhost:8000/"):
        outbound.url_check(DEFAULT, url, resolver_of({"localhost": ["127.0.0.1", "::1"]}))
    for url in (
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:5432/",
        "http://[::ffff:169.254.169.254]/",
        "http://192.168.1.1/",
        "https://gitea.example.com/",
    ):
        with pytest.raises(OutboundRefused) as refused:
            outbound.url_check(DEFAULT, url, resolver_of({"gitea.example.com": ["203.0.113.7"]}))
        assert "not among the hosts the operator allows" in refused.value.message


def test_a_name_must_resolve_to_allowed_addresses_only_unless_it_is_listed() -> None:
    policy = OutboundPolicy.parse(["10.0.0.0/8", "gitea.example.com"])
    resolve = resolver_of(
        {
            "inside.test": ["10.1.1.1"],
            "mixed.test": ["10.1.1.1", "169.254.169.254"],
            "gitea.example.com": ["203.0.113.7"],
        }
    )
    assert policy.addresses("inside.test", 80, resolve) == ["10.1.1.1"]
    assert policy.addresses("gitea.example.com", 443, resolve) == ["203.0.113.7"]  # the operator trusts it
    for host in ("mixed.test", "unknown.test"):
        with pytest.raises(OutboundRefused):
            policy.addresses(host, 80, resolve)
    outbound.url_check(policy, "https://gitea.example.com/", resolver_of({}))  # listed: saved even if down now


def test_ports_narrow_an_entry() -> None:
    policy = OutboundPolicy.parse(["gitea:3000", "10.0.0.5:8080"])
    resolve = resolver_of({"gitea": ["172.20.0.2"]})
    assert policy.addresses("gitea", 3000, resolve) == ["172.20.0.2"]
    assert policy.addresses("10.0.0.5", 8080, resolve) == ["10.0.0.5"]
    for host, port in (("gitea", 22), ("10.0.0.5", 5432)):
        with pytest.raises(OutboundRefused):
            policy.addresses(host, port, resolve)


def test_an_empty_list_allows_nothing() -> None:
    with pytest.raises(OutboundRefused):
        OutboundPolicy.parse([]).addresses("127.0.0.1", 80)


# -- enforcement on connect ---------------------------------------------------------------------------------


class Recorder:
    """An HTTP server on 127.0.0.1 recording the Host header of every request it answers."""

    def __init__(self) -> None:
        hosts: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hosts.append(self.headers.get("Host", ""))
                self.send_response(302 if self.path == "/redirect" else 200)
                self.send_header("Location", "http://10.0.0.1/")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.hosts = hosts
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


def client(policy: OutboundPolicy, resolver: Any = outbound.system_resolve) -> httpx.Client:
    return httpx.Client(transport=outbound.GuardedTransport(policy, resolver), trust_env=False, timeout=5)


def test_an_allowed_connection_goes_to_the_checked_address(recorder: Recorder) -> None:
    policy = OutboundPolicy.parse(["127.0.0.1"])
    with client(policy, resolver_of({"named.test": ["127.0.0.1"]})) as http:
        assert http.get(f"http://named.test:{recorder.port}/").status_code == 200
        assert http.get(f"http://127.0.0.1:{recorder.port}/").status_code == 200
    assert recorder.hosts == [f"named.test:{recorder.port}", f"127.0.0.1:{recorder.port}"]


def test_a_name_that_resolves_elsewhere_on_connect_reaches_nothing(recorder: Recorder) -> None:
    """DNS rebinding: the name resolved to an allowed address when the URL was saved, and to another
    when the connection is made."""
    answers = iter([["127.0.0.1"], ["169.254.169.254"], ["127.0.0.1", "10.9.9.9"]])
    policy = OutboundPolicy.parse(["127.0.0.1"])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    url = f"http://rebind.test:{recorder.port}/"
    outbound.url_check(policy, url, rebinding)  # at save: allowed
    with client(policy, rebinding) as http:
        for _ in range(2):
            with pytest.raises(httpx.ConnectError) as refused:
                http.get(url)
            assert isinstance(outbound.refused_cause(refused.value), OutboundRefused)
    assert recorder.hosts == []


def test_a_host_not_allowed_is_never_contacted(recorder: Recorder) -> None:
    with client(OutboundPolicy.parse(["gitea.example.com"])) as http, pytest.raises(httpx.ConnectError) as refused:
        http.get(f"http://127.0.0.1:{recorder.port}/")
    assert "not among the hosts the operator allows" in str(refused.value)
    assert recorder.hosts == []


def test_redirects_are_not_followed(recorder: Recorder) -> None:
    with client(OutboundPolicy.parse(["127.0.0.1"])) as http:
        assert http.get(f"http://127.0.0.1:{recorder.port}/redirect").status_code == 302
    assert len(recorder.hosts) == 1


def test_the_refusing_transport_connects_nowhere() -> None:
    refusing = outbound.RefusingTransport("no key")
    with httpx.Client(transport=refusing, trust_env=False) as http, pytest.raises(httpx.ConnectError) as refused:
        http.get("http://127.0.0.1:9/")
    assert outbound.refused_cause(refused.value) is not None


# -- git -----------------------------------------------------------------------------------------------------


def test_git_configuration_pins_the_checked_addresses() -> None:
    policy = OutboundPolicy.parse(["10.0.0.0/8", "::1"])
    resolve = resolver_of({"gitea.test": ["10.0.0.7", "10.0.0.8"], "six.test": ["::1"]})
    assert outbound.git_connection_config(policy, "http://gitea.test:3000/o/r.git", resolve) == {
        "http.followRedirects": "false",
        "http.curloptResolve": "gitea.test:3000:10.0.0.7,10.0.0.8",
    }
    assert outbound.git_connection_config(policy, "https://six.test/o/r.git", resolve)["http.curloptResolve"] == (
        "six.test:443:[::1]"
    )
    assert "http.curloptResolve" not in outbound.git_connection_config(policy, "http://10.1.1.1/o/r.git", resolve)
    with pytest.raises(OutboundRefused):
        outbound.git_connection_config(policy, "http://127.0.0.1:3000/o/r.git", resolve)


def _repo_with_commit() -> Path:
    repo = Path(tempfile.mkdtemp(prefix="ws-")) / "repo"
    repo.mkdir()
    for args in (
        ["init", "-q", "--initial-branch=main"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"],
    ):
        subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True)
    return repo


def test_git_uses_the_pinned_address_for_a_name_no_resolver_knows() -> None:
    """git (curl) connects where the policy checked, not where the system resolver would send it."""
    with FakeGitea() as fake:
        _push_pinned(fake)


def _push_pinned(fake_gitea: FakeGitea) -> None:
    policy = OutboundPolicy.parse(["127.0.0.1"])
    port = fake_gitea.url.rsplit(":", 1)[1]
    url = git_remote.remote_url(f"http://pinned.invalid:{port}", fake_gitea.owner, fake_gitea.repo)
    config = outbound.git_connection_config(policy, url, resolver_of({"pinned.invalid": ["127.0.0.1"]}))
    repo = _repo_with_commit()
    sha = git_remote.push(repo, url, fake_gitea.token, local_ref="refs/heads/main", remote_branch="main", config=config)
    assert fake_gitea.branch_sha("main") == sha
    with pytest.raises(git_remote.PushFailed):  # without the pin the name resolves nowhere
        git_remote.push(repo, url, fake_gitea.token, local_ref="refs/heads/main", remote_branch="other")
