"""Debian's Chromium for browser tests: where it is, how to launch it, and skipping (or failing,
with ORKET_REQUIRE_SERVICES=1) when it or Playwright is missing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.services import missing_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]


def chromium_or_skip() -> None:
    if not CHROMIUM.exists():
        missing_service(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing_service("the playwright package is not installed (pip install -e '.[dev]')")


async def launch_chromium(playwright: Any) -> Any:
    """Headless Debian Chromium through Playwright, with the flags this machine needs."""
    return await playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=30_000
    )


async def log_in_through_page(page: Any, base: str, password: str, username: str = "admin") -> None:
    """Sign in with the real login form, as a person would."""
    await page.goto(f"{base}/accounts/login/")
    await page.fill("#id_username", username)
    await page.fill("#id_password", password)
    async with page.expect_navigation():
        await page.click("main form button[type=submit]")
    assert "/accounts/login/" not in page.url, "signing in through the login page failed"


async def wait_until(page: Any, expression: str, *, timeout: float = 30_000, interval: float = 0.05) -> Any:
    """Poll a JavaScript expression until it is truthy; its value, or TimeoutError after `timeout` ms.

    Playwright's wait_for_function re-evaluates its string with eval() from page callbacks, which
    the pages' Content-Security-Policy (no 'unsafe-eval') refuses; page.evaluate runs through the
    DevTools protocol, which the policy does not govern."""
    deadline = asyncio.get_running_loop().time() + timeout / 1000
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"still false after {timeout / 1000:.0f} s: {expression}")
        await asyncio.sleep(interval)
