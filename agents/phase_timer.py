"""Where a turn's time goes: named phases timed per thread, for benchmarks only.

Off (the default) `phase(name)` hands back one shared do-nothing context manager, so instrumented
code pays a function call and a flag check. A benchmark turns it on with `enable()`; then a
`sample(kind)` (a turn, a step) collects the time spent in each phase opened inside it on the same
thread. A phase opened inside another pauses it: each phase's `own` time excludes its nested phases,
so the own times of a sample's phases add up to the time the sample spent in phases at all, and
`inclusive` keeps the whole time from entering a phase to leaving it. Finished samples are kept
until `take()` hands them over. Pure Python, no Django.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

_OFF: AbstractContextManager[None] = nullcontext()


@dataclass
class Sample:
    """The phases of one turn or step: seconds of own and inclusive time, and how often each was entered."""

    kind: str
    wall: float = 0.0
    own: dict[str, float] = field(default_factory=dict)
    inclusive: dict[str, float] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)


class _State(threading.local):
    def __init__(self) -> None:
        # Each open phase: [name, started, resumed] (resumed moves on when a nested phase ends).
        self.stack: list[list[Any]] = []
        self.samples: list[Sample] = []


class _Recorder:
    def __init__(self) -> None:
        self.enabled = False
        self.local = _State()
        self.finished: list[Sample] = []
        self.lock = threading.Lock()


_recorder = _Recorder()


def enable() -> None:
    _recorder.enabled = True


def disable() -> None:
    _recorder.enabled = False


def enabled() -> bool:
    return _recorder.enabled


def take() -> list[Sample]:
    """The samples finished so far (on any thread), removed from the recorder."""
    with _recorder.lock:
        finished, _recorder.finished = _recorder.finished, []
    return finished


def phase(name: str) -> AbstractContextManager[None]:
    """Time the block as phase `name` in every open sample of this thread (nothing when off)."""
    if not _recorder.enabled:
        return _OFF
    return _timed(name)


def sample(kind: str) -> AbstractContextManager[None]:
    """Collect the phases of the block as one sample of `kind` (nothing when off)."""
    if not _recorder.enabled:
        return _OFF
    return _sampled(kind)


def queries_timed(connection: Any) -> AbstractContextManager[Any]:
    """Time every SQL statement on a Django connection as the phase "database" (nothing when off)."""
    if not _recorder.enabled:
        return _OFF
    return connection.execute_wrapper(_query_phase)


def _query_phase(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
    with phase("database"):
        return execute(sql, params, many, context)


def _charge(samples: list[Sample], name: str, own: float) -> None:
    for open_sample in samples:
        open_sample.own[name] = open_sample.own.get(name, 0.0) + own


@contextmanager
def _timed(name: str) -> Iterator[None]:
    state = _recorder.local
    stack = state.stack
    now = time.perf_counter()
    if stack:
        parent = stack[-1]
        _charge(state.samples, parent[0], now - parent[2])
    # A phase inside one of the same name (a query inside a query wrapper) counts once inclusively.
    outermost = all(entry[0] != name for entry in stack)
    entry = [name, now, now]
    stack.append(entry)
    try:
        yield
    finally:
        ended = time.perf_counter()
        stack.pop()
        _charge(state.samples, name, ended - entry[2])
        for open_sample in state.samples:
            open_sample.count[name] = open_sample.count.get(name, 0) + 1
            if outermost:
                open_sample.inclusive[name] = open_sample.inclusive.get(name, 0.0) + ended - entry[1]
        if stack:
            stack[-1][2] = ended


@contextmanager
def _sampled(kind: str) -> Iterator[None]:
    state = _recorder.local
    current = Sample(kind)
    state.samples.append(current)
    began = time.perf_counter()
    try:
        yield
    finally:
        current.wall = time.perf_counter() - began
        state.samples.remove(current)
        with _recorder.lock:
            _recorder.finished.append(current)
