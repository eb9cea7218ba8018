"""PostgreSQL is restarted under a running epic: while it is down, requests to both daphne
processes get 503 with the {detail, code} error shape (JSON for the API and for pages alike), never
a 500 or a stack trace, and /readyz says not ready; once it is back, requests answer again and the
run finishes as if nothing had happened."""

from __future__ import annotations

import time

import httpx
import pytest

from benchmarks.cluster import Cluster
from tests.faults.conftest import Api, assert_runs_whole, project_of_run, wait_for_runs

pytestmark = [pytest.mark.slow, pytest.mark.services]

DOWNTIME_SECONDS = 8.0


def assert_unavailable(response: httpx.Response, code: str) -> None:
    assert response.status_code == 503, (response.request.url, response.status_code, response.text[:500])
    body = response.json()
    assert body["code"] == code and body["detail"], body
    assert "Traceback" not in response.text


@pytest.mark.timeout(400)
def test_requests_get_503_while_postgresql_restarts_and_work_resumes(cluster: Cluster, api: Api) -> None:
    run_id = api.start_run(api.demo_epic("postgres"))
    project_id = project_of_run(cluster, run_id)
    deadline = time.monotonic() + 90
    while not cluster.query("SELECT 1 FROM agents_turn WHERE run_id=%s AND status='succeeded'", run_id):
        assert time.monotonic() < deadline, "no turn finished before the restart"
        time.sleep(0.25)

    other = httpx.Client(base_url=cluster.base_url(1), cookies=api.client.cookies, timeout=10)
    assert cluster.postgres is not None
    cluster.postgres.stop()
    try:
        outage_began = time.monotonic()
        answers = 0
        while time.monotonic() - outage_began < DOWNTIME_SECONDS:
            for client in (api.client, other):
                assert_unavailable(client.get("/api/projects/"), "database_unavailable")
                assert_unavailable(client.get(f"/projects/{project_id}/board/"), "database_unavailable")
                assert_unavailable(client.get(f"/api/runs/{run_id}/"), "database_unavailable")
                # Health endpoints answer for themselves, with or without a session.
                assert_unavailable(client.get("/readyz"), "not_ready")
                assert_unavailable(httpx.get(str(client.base_url).rstrip("/") + "/readyz", timeout=10), "not_ready")
                assert client.get("/healthz").status_code == 200
                answers += 1
            time.sleep(0.5)
        assert answers >= 4
    finally:
        cluster.postgres.start()

    deadline = time.monotonic() + 30
    while api.client.get("/api/projects/").status_code != 200:
        assert time.monotonic() < deadline, "the API did not come back after PostgreSQL did"
        time.sleep(0.5)
    assert other.get(f"/api/runs/{run_id}/").status_code == 200
    other.close()
    finished = wait_for_runs(cluster, [run_id], 240)
    assert finished[run_id][0] == "succeeded", finished
    assert_runs_whole(cluster, [run_id])
