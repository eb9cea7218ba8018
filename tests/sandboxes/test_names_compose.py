"""Sandbox names and compose generation: pure, no database, no Docker."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxes import compose, names

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

PLAIN = {"kind": "python", "framework": "", "databases": [], "entrypoint": "app.py", "root": ".", "message": ""}
DJANGO_PG = {
    "kind": "python",
    "framework": "django",
    "databases": ["postgresql"],
    "entrypoint": "manage.py",
    "root": "backend",
    "message": "",
}


@given(st.text())
def test_sanitised_names_are_valid_dns_labels(raw: str) -> None:
    name = names.sanitize_name(raw)
    assert 1 <= len(name) <= 63
    assert NAME.match(name), name
    assert "--" not in name
    assert names.sanitize_name(name) == name


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=63))
def test_names_already_valid_are_kept(raw: str) -> None:
    assert names.sanitize_name(raw) == raw


@given(st.text(max_size=200), st.integers(min_value=1, max_value=10**9) | st.none())
def test_generated_sandbox_names_are_valid_and_fresh(slug: str, card_id: int | None) -> None:
    first = names.sandbox_name(project_slug=slug, card_id=card_id)
    second = names.sandbox_name(project_slug=slug, card_id=card_id)
    assert names.is_valid_name(first) and names.is_valid_name(second)
    assert first != second or len(first) <= 63


def test_examples() -> None:
    assert names.sanitize_name("My App__v2!") == "my-app-v2"
    assert names.sanitize_name("---") == "sandbox"
    assert names.sanitize_name("") == "sandbox"
    assert names.sanitize_name("Ünïcode ☃") == "n-code"
    assert names.sanitize_name("a" * 100) == "a" * 63
    assert names.sanitize_name("a" * 62 + "-b") == "a" * 62
    assert names.sandbox_name(project_slug="Apollo", card_id=12).startswith("orket-apollo-c12-")
    assert not names.is_valid_name("-x") and not names.is_valid_name("") and names.is_valid_name("x1")


def _every_service(plan: compose.ComposePlan) -> list[dict]:
    return list(plan.document["services"].values())


@pytest.mark.parametrize("network", ["internal", "host"])
def test_every_service_is_hardened_and_labelled(network: str) -> None:
    ports = {"app": 20001, "postgresql": 20002}
    plan = compose.compose_plan(sandbox_id=7, stack=DJANGO_PG, workspace="/data/ws", ports=ports, network=network)
    assert set(plan.services) == {"app", "postgresql"}
    for service in _every_service(plan):
        assert service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert service["read_only"] is True
        assert service["user"] not in ("", "root", "0", "0:0")
        assert any(t.startswith("/tmp:") for t in service["tmpfs"])
        assert service["labels"] == {"orket.sandbox": "7"}
        assert service["pids_limit"] > 0 and service["mem_limit"].endswith("m") and service["cpus"] > 0
        assert service["healthcheck"]["test"][0] == "CMD"
        for volume in service.get("volumes", []):
            assert "docker.sock" not in json.dumps(volume)
            if volume["type"] == "bind":
                assert volume["source"] == "/data/ws" and volume["read_only"] is True
    for volume in plan.document.get("volumes", {}).values():
        assert volume["labels"] == {"orket.sandbox": "7"}
    app = plan.document["services"]["app"]
    assert app["working_dir"] == "/workspace/backend"
    assert plan.urls == {"app": "http://127.0.0.1:20001/"}
    if network == "host":
        assert all(s["network_mode"] == "host" for s in _every_service(plan))
        assert "ports" not in app and "networks" not in plan.document
        assert "@127.0.0.1:20002/app" in app["environment"]["DATABASE_URL"]
        assert "listen_addresses=127.0.0.1" in plan.document["services"]["postgresql"]["command"]
    else:
        assert app["ports"] == ["127.0.0.1:20001:8000"]
        assert "ports" not in plan.document["services"]["postgresql"]
        assert plan.document["networks"]["internal"] == {"internal": True, "labels": {"orket.sandbox": "7"}}
        assert plan.document["networks"]["edge"]["labels"] == {"orket.sandbox": "7"}
        assert plan.document["services"]["postgresql"]["networks"] == ["internal"]
        assert "@postgresql:5432/app" in app["environment"]["DATABASE_URL"]
        assert app["depends_on"] == {"postgresql": {"condition": "service_healthy"}}
    json.loads(plan.render())


def test_secrets_are_generated_per_sandbox() -> None:
    one = compose.compose_plan(sandbox_id=1, stack=DJANGO_PG, workspace="/w", ports={"app": 20000})
    two = compose.compose_plan(sandbox_id=2, stack=DJANGO_PG, workspace="/w", ports={"app": 20000})
    assert one.secrets["postgresql_password"] != two.secrets["postgresql_password"]
    assert len(one.secrets["postgresql_password"]) >= 24
    password = one.document["services"]["postgresql"]["environment"]["POSTGRES_PASSWORD"]
    assert password == one.secrets["postgresql_password"]
    assert password in one.document["services"]["app"]["environment"]["DATABASE_URL"]
    assert one.document["services"]["app"]["environment"]["SECRET_KEY"] != two.secrets["secret_key"]


def test_ports_needed_by_network_mode() -> None:
    assert compose.services_needing_ports(DJANGO_PG, "internal") == ["app"]
    assert compose.services_needing_ports(DJANGO_PG, "host") == ["app", "postgresql"]
    with pytest.raises(ValueError, match="no leased port"):
        compose.compose_plan(sandbox_id=1, stack=DJANGO_PG, workspace="/w", ports={"app": 20000}, network="host")
    with pytest.raises(ValueError, match="network must be"):
        compose.compose_plan(sandbox_id=1, stack=PLAIN, workspace="/w", ports={"app": 20000}, network="bridge")


def test_plain_python_listens_where_it_is_told() -> None:
    plan = compose.compose_plan(sandbox_id=3, stack=PLAIN, workspace="/w", ports={"app": 20005}, network="host")
    app = plan.document["services"]["app"]
    assert app["environment"]["HOST"] == "127.0.0.1" and app["environment"]["PORT"] == "20005"
    assert app["command"][-1].endswith("exec python3 app.py")
    assert "20005" in app["healthcheck"]["test"][-1]


@pytest.mark.parametrize(
    ("stack", "words"),
    [
        ({"kind": "python", "framework": "fastapi", "entrypoint": "main:app"}, "uvicorn main:app"),
        ({"kind": "python", "framework": "flask", "entrypoint": "app:app"}, "flask --app app:app run"),
        ({"kind": "node", "framework": "react", "entrypoint": "npm start"}, "npm start"),
        ({"kind": "dotnet", "framework": "", "entrypoint": "Api.csproj"}, "dotnet run --project Api.csproj"),
    ],
)
def test_stacks_start_their_framework(stack: dict, words: str) -> None:
    plan = compose.compose_plan(sandbox_id=4, stack=stack, workspace="/w", ports={"app": 20010})
    assert words in plan.document["services"]["app"]["command"][-1]


def test_unknown_and_escaping_stacks_are_refused() -> None:
    with pytest.raises(compose.Refusal, match="nothing to run: no manifest"):
        compose.compose_plan(
            sandbox_id=5, stack={"kind": "unknown", "message": "no manifest"}, workspace="/w", ports={"app": 20000}
        )
    with pytest.raises(compose.Refusal):
        compose.compose_plan(sandbox_id=5, stack={**PLAIN, "root": "../etc"}, workspace="/w", ports={"app": 20000})
    with pytest.raises(compose.Refusal):
        compose.compose_plan(sandbox_id=5, stack={**PLAIN, "entrypoint": ""}, workspace="/w", ports={"app": 20000})
