"""The source repository page in headless Chromium against the real embedded server: a maintainer
sets a git remote (a slow git http-backend on 127.0.0.1), the page shows `cloning` and then, without
a reload, `ready` with the detected default branch and a full progress bar; a refused path is said
in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agents.git_http import GitHttpServer, upstream_repository
from tests.browser.chromium import wait_until
from tests.browser.test_run_view import MS, signed_in_page

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

DEMO_ID_JS = """
async () => {
  const projects = await (await fetch("/api/projects/")).json();
  return (projects.results || projects).find((project) => project.slug === "demo").id;
}
"""


async def test_the_page_follows_a_clone_until_it_is_ready(tmp_path: Path) -> None:
    served = tmp_path / "served"
    upstream_repository(served, "app.git", branch="trunk")
    with GitHttpServer(served, pack_delay=2.0) as git_server:
        async with signed_in_page(tmp_path, tokens_per_second="0", height=900) as (page, base, page_errors):
            project = await page.evaluate(DEMO_ID_JS)
            await page.goto(f"{base}/projects/{project}/settings/")
            async with page.expect_navigation():
                await page.click("#source-settings-link")
            assert await page.text_content("#source-state-none")

            await page.check("input[name=kind][value=local]")
            await page.fill("#path", "/etc")
            async with page.expect_navigation():
                await page.click("#source-save")
            assert "ORKET_LOCAL_REPO_ROOTS" in await page.text_content(".problems")

            await page.check("input[name=kind][value=remote]")
            await page.fill("#url", git_server.url("app.git"))
            await page.fill("#path", "")
            async with page.expect_navigation():
                await page.click("#source-save")
            loaded = await page.evaluate("performance.timeOrigin")
            assert await page.text_content("#source-state") == "cloning"
            await wait_until(page, "document.getElementById('source-state').textContent === 'ready'", timeout=60 * MS)
            assert await page.evaluate("performance.timeOrigin") == loaded  # shown by the page script, no reload
            assert await page.evaluate("document.getElementById('source-progress').value") == 100
            assert await page.text_content("#source-branch") == "trunk"
            assert await page.is_hidden("#source-error")
            assert page_errors == []
