"""The phase timer the engine benchmark reads: nothing when off, own times that add up when on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from agents import phase_timer


@pytest.fixture
def timer_on() -> Iterator[None]:
    phase_timer.take()
    phase_timer.enable()
    try:
        yield
    finally:
        phase_timer.disable()
        phase_timer.take()


def test_off_it_hands_back_one_shared_do_nothing_context_and_records_nothing() -> None:
    assert not phase_timer.enabled()
    phase_timer.take()

    first, second = phase_timer.phase("git"), phase_timer.sample("step")
    with phase_timer.sample("step"), phase_timer.phase("git"), phase_timer.phase("database"):
        pass

    assert first is second  # no object made per call
    assert phase_timer.queries_timed(object()) is first  # never touches the connection
    assert phase_timer.take() == []


def test_off_a_phase_costs_no_more_than_a_few_microseconds() -> None:
    calls = 100_000
    began = time.perf_counter()
    for _ in range(calls):
        with phase_timer.phase("git"):
            pass
    per_call = (time.perf_counter() - began) / calls

    assert per_call < 20e-6  # generous: the machine may be busy; the real cost is well under 1 µs


def test_nested_phases_add_up_to_the_time_spent_in_them(timer_on: None) -> None:
    with phase_timer.sample("step"):
        began = time.perf_counter()
        with phase_timer.phase("tool:write_file"):
            time.sleep(0.02)
            with phase_timer.phase("git"):
                time.sleep(0.03)
            with phase_timer.phase("events"), phase_timer.phase("database"):
                time.sleep(0.01)
        spent = time.perf_counter() - began

    [step] = phase_timer.take()

    assert step.kind == "step"
    assert set(step.own) == {"tool:write_file", "git", "events", "database"}
    assert sum(step.own.values()) == pytest.approx(spent, abs=0.002)
    assert step.own["git"] >= 0.03 and step.own["database"] >= 0.01
    assert step.own["tool:write_file"] == pytest.approx(0.02, abs=0.015)  # its nested phases excluded
    assert step.own["events"] < 0.005  # the query inside it counts as database
    assert step.inclusive["tool:write_file"] == pytest.approx(spent, abs=0.002)
    assert step.inclusive["events"] >= 0.01
    assert step.count == {"tool:write_file": 1, "git": 1, "events": 1, "database": 1}
    assert step.wall >= spent


def test_a_phase_counts_in_every_open_sample_and_repeats_add(timer_on: None) -> None:
    with phase_timer.sample("turn"):
        with phase_timer.phase("claim"):
            time.sleep(0.005)
        for _ in range(2):
            with phase_timer.sample("step"), phase_timer.phase("git"):
                time.sleep(0.005)

    samples = phase_timer.take()

    steps = [s for s in samples if s.kind == "step"]
    [turn] = [s for s in samples if s.kind == "turn"]
    assert len(steps) == 2 and all(set(s.own) == {"git"} for s in steps)
    assert turn.count == {"claim": 1, "git": 2}
    assert turn.own["git"] == pytest.approx(sum(s.own["git"] for s in steps))


def test_threads_keep_their_own_phases(timer_on: None) -> None:
    def work(name: str) -> None:
        with phase_timer.sample(name), phase_timer.phase(name):
            time.sleep(0.01)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    samples = {s.kind: s for s in phase_timer.take()}
    assert set(samples) == {"a", "b"}
    assert set(samples["a"].own) == {"a"} and set(samples["b"].own) == {"b"}
