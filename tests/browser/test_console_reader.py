"""A Reader (and a Writer) in the web console: every page works, the page makes no request
the role is refused (every request is recorded and none got 401 or 403), and no button or
control of a higher role is shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.console import Console
from tests.support import kmip
from tests.support.admin import bearer, https_client, write_pair
from tests.support.server import KmipdServer

A = "/admin/v1"
PAGES = ("#/keys", "#/root-keys", "#/certificates", "#/activity", "#/health")
# Buttons only a Writer or a Manager can use (by their text or their data-action).
PRIVILEGED_TEXTS = ("Delete", "Rotate", "Disable", "Enable", "Restore", "Save schedule", "Setup")
PRIVILEGED_ACTIONS = ("rotate", "schedule", "disable", "enable", "delete", "restore")


@pytest.fixture(scope="module")
def reader_key(console_server: KmipdServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An instance with an allowed certificate and fetched keys, and a Reader API key."""
    server = console_server
    with https_client(server) as http:
        http.headers.update(bearer(server.admin_api_key))
        assert http.post(f"{A}/instances", json={"name": "vsphere"}).status_code == 201
        issued = http.post(
            f"{A}/instances/vsphere/certificates/issue", json={"common_name": "vcenter01"}
        ).json()
        reader = http.post(f"{A}/apikeys", json={"service_id": "auditor", "role": "Reader"})
        assert reader.status_code == 201, reader.text
    credentials = write_pair(
        tmp_path_factory.mktemp("reader"),
        "vcenter",
        issued["certificate"]["pem"],
        issued["private_key_pem"],
    )
    with server.connect(context=server.tls_context(certificate=credentials)) as connection:
        for _ in range(2):
            connection.call(kmip.get(kmip.created_uid(connection.call(kmip.create_aes()))))
    return str(reader.json()["api_key"])


def _privileged_controls(page: Any) -> list[str]:
    found = []
    for button in page.locator("button").all():
        text = (button.text_content() or "").strip()
        if any(word in text for word in PRIVILEGED_TEXTS):
            found.append(text)
    for action in PRIVILEGED_ACTIONS:
        found += [f"data-action={action}"] * page.locator(f'[data-action="{action}"]').count()
    found += ["checkbox"] * page.locator("#view input[type=checkbox]").count()
    found += ["Setup link"] * page.locator('#nav a[data-page="setup"]').count()
    return found


def test_reader_sees_only_what_a_reader_can_do(
    playwright_browser: Any, console_server: KmipdServer, reader_key: str, screenshots: Path
) -> None:
    console = Console.open(playwright_browser, console_server)
    page = console.page
    try:
        console.sign_in(reader_key)
        expect(page.locator("#who-text")).to_have_text("auditor · Reader")
        page.locator('#view > [data-page="keys"][aria-busy="false"]').wait_for()
        assert _privileged_controls(page) == []
        page.get_by_label("Instance").select_option("vsphere")
        expect(page.locator("#keys-heading")).to_have_text("Keys of vsphere")
        expect(page.locator("#keys tbody tr")).to_have_count(2)
        assert _privileged_controls(page) == []
        # The stale-key view is a Reader's too.
        page.get_by_label("Not fetched for").fill("0")
        page.locator("#show-stale").click()
        expect(page.locator("#keys-heading")).to_contain_text("not fetched for 0 days")
        for target in PAGES[1:]:
            console.go(target)
            assert _privileged_controls(page) == [], target
            if target == "#/activity":
                expect(page.locator("#chart-caption")).to_contain_text("KMIP operations")
                expect(page.locator("#audit tbody tr").first).to_be_visible()
        console.go("#/root-keys")
        expect(page.locator('section[data-instance="vsphere"]')).to_contain_text("active")
        console.screenshot(screenshots, "reader-root-keys")
        # The wizard is not offered: its address shows the inventory instead.
        page.evaluate("() => { location.hash = '#/setup'; }")
        page.locator('#view > [data-page="keys"][aria-busy="false"]').wait_for()
        assert _privileged_controls(page) == []

        base = console_server.https_url
        asked = {e.url.split("?")[0].removeprefix(base) for e in console.api_exchanges()}
        # Every page really asked the API (a console that asked nothing would pass too).
        for path in (
            f"{A}/session",
            f"{A}/instances",
            f"{A}/instances/vsphere/keys",
            f"{A}/instances/vsphere/stale-keys",
            f"{A}/instances/vsphere/certificates",
            f"{A}/instances/vsphere/rewrap",
            f"{A}/audit",
            f"{A}/nodes",
            "/metrics",
        ):
            assert path in asked, path
        assert console.refused() == [], console.refused()
        assert console.script_errors == []

        # The recorder does see a refusal: a Manager-only call made with the page's token.
        status = page.evaluate(
            """async () => (await fetch('/admin/v1/apikeys', {headers: {Authorization:
                'Bearer ' + sessionStorage.getItem('kmipd.console.token')}})).status"""
        )
        assert status == 403
        page.wait_for_timeout(200)
        assert [e.status for e in console.refused()] == [403]
    finally:
        console.close()


def test_signing_out_forgets_the_token(
    playwright_browser: Any, console_server: KmipdServer, reader_key: str
) -> None:
    console = Console.open(playwright_browser, console_server)
    page = console.page
    try:
        console.sign_in(reader_key)
        token = page.evaluate("() => sessionStorage.getItem('kmipd.console.token')")
        assert token and reader_key not in token
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("API key")).to_be_visible()
        assert page.evaluate("() => sessionStorage.length + localStorage.length") == 0
        # A wrong key is refused with IAM's message, shown to the user.
        console.sign_in_attempt("kmipd-not-a-key")
        expect(page.locator("#status")).to_contain_text("Provided API key could not be found")
        # Keyboard only: the key field has the focus; Enter signs in; Tab reaches the pages.
        expect(page.get_by_label("API key")).to_be_focused()
        page.keyboard.type(reader_key)
        page.keyboard.press("Enter")
        expect(page.locator("#who-text")).to_have_text("auditor · Reader")
        page.locator('#view > [data-page="keys"][aria-busy="false"]').wait_for()
        # A reload keeps the session (the token, in this tab only) and starts the focus at
        # the top: the skip link, then the sections.
        page.reload()
        page.locator('#view > [data-page="keys"][aria-busy="false"]').wait_for()
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Key inventory")).to_be_focused()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Enter")
        expect(page.locator("#view")).to_be_focused()
        assert page.evaluate("() => location.hash") == "#/keys"
    finally:
        console.close()


def test_writer_gets_the_wizard_and_rotation_but_no_manager_control(
    playwright_browser: Any, console_server: KmipdServer, reader_key: str
) -> None:
    del reader_key  # only for the instance vsphere and its keys that its fixture sets up
    with https_client(console_server) as http:
        http.headers.update(bearer(console_server.admin_api_key))
        made = http.post(f"{A}/apikeys", json={"service_id": "operator", "role": "Writer"})
        assert made.status_code == 201, made.text
    console = Console.open(playwright_browser, console_server)
    page = console.page
    try:
        console.sign_in(made.json()["api_key"])
        page.locator('#view > [data-page="setup"][aria-busy="false"]').wait_for()
        manager_only = ("Delete", "Disable", "Enable", "Restore")
        for target in ("#/keys?instance=vsphere", "#/root-keys", "#/certificates"):
            console.go(target)
            controls = _privileged_controls(page)
            assert not [c for c in controls if any(word in c for word in manager_only)], target
            assert "checkbox" not in controls, target
        console.go("#/root-keys")
        card = page.locator('section[data-instance="vsphere"]')
        expect(card.locator('[data-action="rotate"]')).to_be_visible()
        expect(card.locator('[data-action="schedule"]')).to_be_visible()
        assert console.refused() == [], console.refused()
        assert console.script_errors == []
    finally:
        console.close()
