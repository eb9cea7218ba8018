"""The pure rule modules stay free of Django, so they can be read and tested without a database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RULE_MODULES = [
    "boards.machine",
    "boards.scheduling",
    "boards.governance",
    "sandboxes.compose",
    "sandboxes.stacks",
    "agents.providers",
    "agents.toolcalls",
    "agents.step_schema",
    "agents.code_view",
]


@pytest.mark.parametrize("module", RULE_MODULES)
def test_rule_module_imports_no_django(module: str) -> None:
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not loaded, loaded\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
