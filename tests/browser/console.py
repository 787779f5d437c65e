"""Driving the web console in a browser: open it, sign in, and record every request the
page makes (and every script error) so a test can assert what the console asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.server import KmipdServer

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "console-screenshots"
TIMEOUT_MS = 20_000
# keyprotect.action_delay of the test servers: a deleted root key is restorable this soon.
RESTORE_DELAY = 0.5
# rewrap settings of the test servers: 20 objects per batch, 0.4 s apart.
REWRAP_PACE = {"batch_size": 20, "pause": 0.4}


@dataclass
class Exchange:
    method: str
    url: str
    status: int


@dataclass
class Console:
    """One browser context (its own session storage) on the console of ``server``."""

    page: Any
    server: KmipdServer
    exchanges: list[Exchange] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Any, server: KmipdServer) -> Console:
        # The test CA is not in Chromium's trust store; the console is reached on 127.0.0.1.
        context = browser.new_context(
            ignore_https_errors=True, accept_downloads=True, viewport={"width": 1366, "height": 800}
        )
        context.set_default_timeout(TIMEOUT_MS)
        console = cls(context.new_page(), server)
        console.page.on(
            "response",
            lambda r: console.exchanges.append(Exchange(r.request.method, r.url, r.status)),
        )
        console.page.on("pageerror", lambda e: console.script_errors.append(str(e)))
        console.page.on(
            "console",
            lambda m: console.script_errors.append(m.text) if m.type == "error" else None,
        )
        console.page.goto(f"{server.https_url}/ui/")
        return console

    def sign_in_attempt(self, api_key: str) -> None:
        self.page.get_by_label("API key").fill(api_key)
        self.page.get_by_role("button", name="Sign in").click()

    def sign_in(self, api_key: str) -> None:
        self.sign_in_attempt(api_key)
        self.page.locator("#who-text").wait_for()

    def go(self, hash_path: str) -> None:
        """Open (or reload) a page of the console and wait until it has loaded its data."""
        page = hash_path.lstrip("#/").split("?")[0]
        before = self.page.evaluate(
            "() => document.querySelector('#view > [data-render]')?.dataset.render || '0'"
        )
        if self.page.evaluate("() => location.hash") == hash_path:
            self.page.locator(f'#nav a[data-page="{page}"]').click()
        else:
            self.page.evaluate("path => { location.hash = path; }", hash_path)
        self.page.locator(
            f'#view > [data-page="{page}"][aria-busy="false"]:not([data-render="{before}"])'
        ).wait_for()

    def screenshot(self, directory: Path, name: str) -> Path:
        path = directory / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def api_exchanges(self) -> list[Exchange]:
        """Requests to kmipd other than the console's own files."""
        return [e for e in self.exchanges if "/ui/" not in e.url]

    def refused(self) -> list[Exchange]:
        return [e for e in self.api_exchanges() if e.status in (401, 403)]

    def close(self) -> None:
        self.page.context.close()
