from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agents.fake_llm import FakeLLMServer


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    """A fake LLM HTTP server on 127.0.0.1; queue replies on it, then read `requests`."""
    with FakeLLMServer() as server:
        yield server
        assert server.errors == [], f"the fake server failed: {server.errors}"
