"""The deployment files: compose.yaml validates with the real docker compose (or docker-compose) and
an env file made from .env.example; the Dockerfile runs as a non-root user and collects static files;
.env.example lists every variable Orket reads. The image itself is not built here: nothing can be
pulled from a registry on the CI machine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.services import missing_service

REPO = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("orket_site", "boards", "agents", "sandboxes")
# Reading an environment variable: the settings helpers, sandboxes' _setting, os.environ.get, getenv.
READS = re.compile(
    r"""(?:env_str|env_int|env_bool|env_list|_setting|environ\.get|getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
)
NOT_SETTINGS = {"TMPDIR"}  # the operating system's, not Orket's


def compose_command() -> list[str]:
    """`docker compose` when the plugin exists, else `docker-compose`; skips (or fails) when neither does."""
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    missing_service("neither `docker compose` nor `docker-compose` is installed")
    raise AssertionError("unreachable")


def env_from_example() -> str:
    """.env.example as a deployer would fill it in: every placeholder replaced."""
    text = (REPO / ".env.example").read_text()
    return re.sub(r"change-me[A-Za-z0-9-]*", "filled-in-for-the-test", text)


def compose_config(tmp_path: Path, env_text: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(REPO / "compose.yaml", tmp_path / "compose.yaml")
    shutil.copy(REPO / "Dockerfile", tmp_path / "Dockerfile")
    (tmp_path / ".env").write_text(env_text)
    return subprocess.run(
        [*compose_command(), "--project-directory", str(tmp_path), "-f", str(tmp_path / "compose.yaml"), "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_is_valid_with_the_example_env(tmp_path: Path) -> None:
    result = compose_config(tmp_path, env_from_example())
    assert result.returncode == 0, result.stderr
    rendered = result.stdout
    for service in ("db:", "redis:", "migrate:", "web:", "worker:", "beat:"):
        assert f"  {service}" in rendered, service
    assert "postgres:16" in rendered and "redis:7" in rendered
    assert "/readyz" in rendered and "pg_isready" in rendered and "redis-cli" in rendered
    assert "postgres://orket:filled-in-for-the-test@db:5432/orket" in rendered
    assert "orket-data:/data" in rendered and "postgres-data:/var/lib/postgresql/data" in rendered
    assert "change-me" not in rendered


def test_compose_refuses_to_start_without_a_database_password(tmp_path: Path) -> None:
    env = "\n".join(line for line in env_from_example().splitlines() if not line.startswith("POSTGRES_PASSWORD="))
    result = compose_config(tmp_path, env + "\n")
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    found = []
    for line in logical.splitlines():
        match = re.match(r"^([A-Z]+)\s+(.*)$", line.strip())
        if match and not line.lstrip().startswith("#"):
            found.append((match.group(1), match.group(2)))
    return found


def test_dockerfile_runs_as_a_non_root_user_and_collects_static_files() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [value.split(":")[0].strip() for name, value in instructions if name == "USER"]
    assert users, "the image must switch to a user"
    assert users[-1] not in {"root", "0"}
    runs = " ".join(value for name, value in instructions if name == "RUN")
    assert "collectstatic" in runs and "useradd" in runs
    assert "pyproject.toml" in " ".join(value for name, value in instructions if name == "COPY")
    assert [name for name, _ in instructions].index("USER") > max(
        index for index, (name, value) in enumerate(instructions) if "collectstatic" in value
    )
    cmd = next(value for name, value in reversed(instructions) if name == "CMD")
    assert "daphne" in cmd and "orket_site.asgi:application" in cmd


def variables_read_by_orket() -> set[str]:
    names: set[str] = set()
    for package in APP_PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if path.name == "settings_test.py" or "migrations" in path.parts:
                continue
            names.update(READS.findall(path.read_text()))
    return names - NOT_SETTINGS


def test_env_example_lists_every_variable_orket_reads() -> None:
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.MULTILINE))
    read = variables_read_by_orket()
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ORKET_ENV", "ORKET_QUEUE"} <= read  # the scan works
    assert read - listed == set(), f"add these to .env.example: {sorted(read - listed)}"


def test_env_example_holds_no_real_secret() -> None:
    for line in (REPO / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z_]*(?:SECRET|PASSWORD|TOKEN)(?:_KEY)?)=(.*)$", line)
        if match:
            assert match.group(2).startswith("change-me"), line


@pytest.mark.parametrize("name", ["compose.yaml", "Dockerfile", ".env.example", "docs/deploy.md"])
def test_deployment_files_exist(name: str) -> None:
    assert (REPO / name).is_file()
