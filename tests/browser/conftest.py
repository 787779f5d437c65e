"""Browser tests of the web console: the system Chromium (Debian's ``chromium`` package)
driven by Playwright, against a real ``kmipd serve``. Never a downloaded browser.

Without Chromium or Playwright the tests are skipped on a workstation and fail under CI
(``CI=true``), so a CI run can never count a missing browser as a pass.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.console import RESTORE_DELAY, REWRAP_PACE, SCREENSHOTS
from tests.support.server import KmipdServer, init_server

CHROMIUM = Path("/usr/bin/chromium")


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (required under CI)", pytrace=False)
    pytest.skip(message)


# Per module, not per session: Playwright's sync API keeps an asyncio event loop running in
# this thread while it is open, and asyncio.run() in every later test module then fails.
@pytest.fixture(scope="module")
def playwright_browser() -> Iterator[Any]:
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    """A fresh server for one test module."""
    server = init_server(Path(tmp_path_factory.mktemp("kmipd")) / "data")
    # A deleted root key can be restored half a second after its deletion (not 30 s); the
    # re-wrap job goes in small, paced batches, so the console can be watched following it.
    server.configure(keyprotect={"action_delay": RESTORE_DELAY}, rewrap=REWRAP_PACE)
    server.start()
    try:
        yield server
    finally:
        server.stop()
