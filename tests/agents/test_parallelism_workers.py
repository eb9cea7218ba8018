"""With Redis and Celery workers (the production topology), the Run dialog's upper bound is the number
of workers that answer a ping, unless ORKET_MAX_PARALLEL says otherwise."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.processes import PYTHON, app_env, run_manage, started
from tests.services import free_port, redis_url

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

BIN = Path(PYTHON).parent
ASK = "from agents.run_options import parallelism; p = parallelism(); print(f'PARALLEL {p.maximum} | {p.source}')"


def parallelism_in(env: dict[str, str]) -> str:
    answer = run_manage(env, "shell", "-c", ASK, timeout=60)
    assert answer.returncode == 0, answer.stderr
    return next(line for line in answer.stdout.splitlines() if line.startswith("PARALLEL"))


def test_the_workers_that_answer_bound_the_cards_at_a_time(tmp_path: Path) -> None:
    env = app_env(REDIS_URL=redis_url(), ORKET_DATA_DIR=str(tmp_path))
    assert parallelism_in(env) == "PARALLEL 1 | no Celery worker answered; runs wait for one"
    workers = [
        [str(BIN / "celery"), "-A", "orket_site", "worker", "--pool=solo", f"--hostname=w{n}-{free_port()}@%h"]
        for n in range(2)
    ]
    with started(workers[0], env, tmp_path / "w0.log"), started(workers[1], env, tmp_path / "w1.log"):
        deadline = time.monotonic() + 60
        while (found := parallelism_in(env)) != "PARALLEL 2 | 2 Celery worker(s) answering":
            assert time.monotonic() < deadline, found
            time.sleep(0.5)
        env_with_setting = {**env, "ORKET_MAX_PARALLEL": "5"}
        assert parallelism_in(env_with_setting) == "PARALLEL 5 | the ORKET_MAX_PARALLEL setting"
