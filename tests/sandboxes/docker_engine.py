"""A real Docker engine for the sandbox tests, or a plain reason why there is none.

`docker_engine()` finds an engine that answers (DOCKER_HOST or the default socket), or starts one
with `.ci/docker-up` (root and Debian's docker.io needed), which also builds the local test images:
nothing can be pulled from a registry here. Without an engine the test is skipped, or fails under
ORKET_REQUIRE_SERVICES=1.

Use the `docker_engine` fixture (session scope) from a conftest or a test module:

    from tests.sandboxes.docker_engine import docker_engine  # noqa: F401  (the fixture)

    def test_something(docker_engine: DockerEngine) -> None:
        docker_engine.client.containers.run(docker_engine.python_image, ...)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from docker.errors import DockerException

from tests.services import missing_service

REPO = Path(__file__).resolve().parents[2]
DOCKER_UP = REPO / ".ci" / "docker-up"
BUSYBOX_IMAGE = "orket-test/busybox:latest"
PYTHON_IMAGE = "orket-test/python:bookworm"

_lock = threading.Lock()
_failure: str | None = None


@dataclass(frozen=True)
class DockerEngine:
    client: docker.DockerClient
    busybox_image: str = BUSYBOX_IMAGE
    python_image: str = PYTHON_IMAGE


def _client() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except DockerException:
        return None
    return client


def _images_present(client: docker.DockerClient) -> bool:
    try:
        client.images.get(BUSYBOX_IMAGE)
        client.images.get(PYTHON_IMAGE)
    except DockerException:
        return False
    return True


def find_or_start_engine() -> DockerEngine | str:
    """The engine with the test images, or the reason there is none. Starts it at most once."""
    global _failure
    with _lock:
        if _failure is not None:
            return _failure
        client = _client()
        if client is not None and _images_present(client):
            return DockerEngine(client=client)
        if os.environ.get("ORKET_NO_DOCKER_UP") == "1":
            _failure = "no Docker engine with the test images answers, and ORKET_NO_DOCKER_UP=1"
            return _failure
        if os.geteuid() != 0 or shutil.which("dockerd") is None:
            _failure = "no Docker engine answers, and this user cannot start one (root and docker.io needed)"
            return _failure
        try:
            done = subprocess.run(["bash", str(DOCKER_UP)], capture_output=True, text=True, timeout=1200, check=False)
        except subprocess.TimeoutExpired:
            _failure = ".ci/docker-up did not finish within 20 minutes"
            return _failure
        client = _client()
        if done.returncode != 0 or client is None or not _images_present(client):
            _failure = f".ci/docker-up failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
            return _failure
        return DockerEngine(client=client)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    found = find_or_start_engine()
    if isinstance(found, str):
        missing_service(found)
        raise AssertionError("unreachable")  # missing_service skips or fails
    yield found
