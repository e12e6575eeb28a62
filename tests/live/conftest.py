"""A real headless browser for the live view and docs tests: Debian's Chromium driven by Playwright for Python.

Playwright's own browser download cannot work on a machine without outside network, so it drives the system's
``chromium`` (``scripts/install-browser.sh`` installs both). Without them these tests skip locally and fail in CI.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testing.harness import ROOT, GatewayProcess
from tests.conftest import TEST_SETTINGS

ALICE = "alice-live-view-secret-0001"
BOB = "bob-live-view-secret-000002"
METRICS_TOKEN = "scrape-token-1234"

#: Flags the machine needs (closed network: no background fetches), plus headless as root.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Where tests leave screenshots for people to look at (CI keeps the build/ directory of its run).
ARTIFACTS = ROOT / "build" / "test-artifacts"


def chromium_path() -> str | None:
    return os.environ.get("JUPYCELL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")  # not session: Playwright's sync API keeps an event loop running in this thread,
def browser() -> Iterator[Any]:  # and tests of other modules on this worker call asyncio.run()
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        executable = None
    if executable is None:
        message = "no Chromium/Playwright: run scripts/install-browser.sh"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set)")
        pytest.skip(message)
    with tempfile.TemporaryDirectory(prefix="jc-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, args=CHROMIUM_FLAGS, viewport={"width": 1100, "height": 900}
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        page.close()


def save_screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="session")
def secured(kernels_root: Path) -> Iterator[GatewayProcess]:
    """A gateway with API keys (alice, bob) and a metrics token."""
    process = GatewayProcess(
        kernels_root / "live", **TEST_SETTINGS, api_keys=f"alice:{ALICE},bob:{BOB}", metrics_token=METRICS_TOKEN
    )
    with process:
        yield process
