"""The console with a root key provider in a PKCS#11 token (SoftHSM2): the wizard makes an
instance whose new root key is in the token; kmipd does not list that key's state, so the root
key card shows what the last action reported and offers both disable and enable; both work,
and KMIP follows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from kmipd import config
from kmipd.protocol._generated import ResultStatus
from tests.browser.console import Console
from tests.support import kmip, softhsm
from tests.support.admin import bearer, https_client, write_pair
from tests.support.server import KmipdServer, init_server

PIN_ENV = "KMIPD_TEST_HSM_PIN"


@pytest.fixture
def hsm_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KmipdServer]:
    token = softhsm.token()
    monkeypatch.setenv(PIN_ENV, token.user_pin)  # the server inherits it; no PIN on disk
    server = init_server(tmp_path / "data")
    settings = config.load(server.data_dir)
    provider = config.ProviderSettings(
        "hsm",
        "pkcs11",
        {"library": token.module, "token_label": token.label, "pin_env": PIN_ENV},
    )
    settings = dataclasses.replace(settings, root_key_providers=(provider,))
    (server.data_dir / config.CONFIG_FILE).write_text(config.render(settings), encoding="utf-8")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _get(server: KmipdServer, credentials: tuple[Path, Path], uid: str) -> Any:
    with server.connect(context=server.tls_context(certificate=credentials)) as connection:
        return kmip.item(connection.call(kmip.get(uid)))


def test_hsm_root_key_disable_and_enable_from_the_console(
    playwright_browser: Any, hsm_server: KmipdServer, tmp_path: Path
) -> None:
    server = hsm_server
    console = Console.open(playwright_browser, server)
    page = console.page
    try:
        console.sign_in(server.admin_api_key)
        # The wizard offers a new root key in the configured provider, made with the instance.
        page.locator('#view > [data-page="setup"][aria-busy="false"]').wait_for()
        page.get_by_label("Use root key").select_option("provider:hsm")
        page.locator("#root-key-next").click()
        expect(page.locator("#root-key-result")).to_contain_text("a new one in provider hsm")
        page.get_by_label("Instance name").fill("hsm-a")
        page.locator("#instance-create").click()
        expect(page.locator("#instance-result")).to_contain_text("Instance hsm-a created")
        with https_client(server) as http:
            http.headers.update(bearer(server.admin_api_key))
            instance = http.get("/admin/v1/instances/hsm-a").json()
            issued = http.post(
                "/admin/v1/instances/hsm-a/certificates/issue", json={"common_name": "hsm-a"}
            ).json()
        assert instance["provider"] == "hsm"
        expect(page.locator("#instance-result")).to_contain_text(instance["root_key_id"])
        credentials = write_pair(
            tmp_path, "hsm-a", issued["certificate"]["pem"], issued["private_key_pem"]
        )
        with server.connect(context=server.tls_context(certificate=credentials)) as connection:
            uid = kmip.created_uid(connection.call(kmip.create_aes()))

        console.go("#/root-keys")
        card = page.locator('section[data-instance="hsm-a"]')
        expect(card).to_contain_text("in provider hsm")
        expect(card.locator('[data-field="state"]')).to_have_text("unknown")
        expect(card.locator('[data-action="enable"]')).to_be_visible()
        card.locator('[data-action="disable"]').click()
        card = page.locator('section[data-instance="hsm-a"]')
        expect(card.locator('[data-field="state"]')).to_have_text("disabled")
        assert _get(server, credentials, uid).result_status == ResultStatus.OPERATION_FAILED
        expect(card.locator('[data-action="disable"]')).to_have_count(0)
        card.locator('[data-action="enable"]').click()
        card = page.locator('section[data-instance="hsm-a"]')
        expect(card.locator('[data-field="state"]')).to_have_text("active")
        assert _get(server, credentials, uid).result_status == ResultStatus.SUCCESS
        assert console.refused() == [] and console.script_errors == []
    finally:
        console.close()
