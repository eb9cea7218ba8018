"""The contract every isolation backend meets: run one command over agent code, bounded, and report.

`sandboxes.local_backend` (bubblewrap or a plain subprocess) and `sandboxes.docker_backend` (a
throwaway container) both implement `IsolatedRunner`. Verification only talks to this contract.
Pure: no Django imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Called with ("stdout" | "stderr", text) as the command's output is produced, from a reader thread.
OutputCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class Limits:
    timeout_seconds: float = 60.0
    memory_mb: int = 512
    max_processes: int = 64
    cpus: float = 1.0
    max_output_bytes: int = 1_000_000


@dataclass(frozen=True)
class IsolatedCommand:
    """`argv` runs with `workdir` as its working directory.

    `read_only` maps host paths to the paths the command sees, all read-only (the agents' workspace,
    the fixture, the runner). `writable` maps host folders the command may change (a throwaway copy of a
    card's checkout for agent commands; verification never uses it). `writable_tmp` gives it a private,
    empty /tmp. There is never a network.
    """

    argv: tuple[str, ...]
    read_only: dict[Path, str]
    workdir: str
    env: dict[str, str] = field(default_factory=dict)
    writable: dict[Path, str] = field(default_factory=dict)
    writable_tmp: bool = True
    limits: Limits = Limits()


@dataclass(frozen=True)
class IsolatedResult:
    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: int
    timed_out: bool
    isolation: str  # plain words, shown to people: "docker container, no network, ..." or "plain subprocess ..."
    output_truncated: bool = False


class IsolatedRunner(Protocol):
    name: str  # "docker" or "local"

    def available(self) -> bool: ...

    def describe(self) -> str: ...

    def run(self, command: IsolatedCommand, on_output: OutputCallback | None = None) -> IsolatedResult: ...
