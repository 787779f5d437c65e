"""An instance whose root key is in a PKCS#11 token (SoftHSM2), end to end on a real server.

The root key is made in the token when the instance is created, KMIP keys are served, the
instance's keys are rotated and re-wrapped, and a root key destroyed on the token itself
(outside kmipd) stops the instance within the periodic check; the built-in instance goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmipd import config
from kmipd.protocol._generated import ResultReason, ResultStatus
from tests.support import kmip, softhsm
from tests.support.admin import bearer, https_client, write_pair
from tests.support.server import KmipdServer, init_server

CHECK_INTERVAL = 0.5
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
    settings = dataclasses.replace(
        settings,
        root_key_providers=(provider,),
        root_keys=config.RootKeysSettings(check_interval=CHECK_INTERVAL),
    )
    (server.data_dir / config.CONFIG_FILE).write_text(config.render(settings), encoding="utf-8")
    assert token.user_pin not in (server.data_dir / config.CONFIG_FILE).read_text()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_pkcs11_root_key_serves_rotates_and_stops_when_destroyed_on_the_token(
    hsm_server: KmipdServer, tmp_path: Path
) -> None:
    server = hsm_server
    with https_client(server) as http:
        http.headers.update(bearer(server.admin_api_key))
        reply = http.post("/admin/v1/instances", json={"name": "hsm-a", "provider": "hsm"})
        assert reply.status_code == 201, reply.text
        root_key_id = reply.json()["root_key_id"]
        issued = http.post(
            "/admin/v1/instances/hsm-a/certificates/issue", json={"common_name": "hsm-a"}
        ).json()
        creds = write_pair(
            tmp_path, "hsm-a", issued["certificate"]["pem"], issued["private_key_pem"]
        )
        context = server.tls_context(certificate=creds)
        keys = {}
        with server.connect(context=context) as connection:
            for _ in range(10):
                uid = kmip.created_uid(connection.call(kmip.create_aes()))
                keys[uid] = kmip.key_material(connection.call(kmip.get(uid)))
        default_uid = kmip.created_uid(server.call(kmip.create_aes()))

        rotated = http.post("/admin/v1/instances/hsm-a/rotate")
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["root_key_version"] == 2
        deadline = time.monotonic() + 30
        while (job := http.get("/admin/v1/instances/hsm-a/rewrap").json())["state"] != "done":
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["rewrapped"] == len(keys)
    with server.connect(context=context) as connection:
        for uid, material in keys.items():
            assert kmip.key_material(connection.call(kmip.get(uid))) == material

    # Destroy the root key on the token, not through kmipd: the periodic check notices.
    from kmipd.keys.providers.pkcs11 import Pkcs11Config, Pkcs11Provider

    token = softhsm.token()
    provider = Pkcs11Provider(
        Pkcs11Config(library=token.module, token_label=token.label, pin=os.environ[PIN_ENV])
    )

    async def destroy() -> None:
        try:
            await provider.delete(root_key_id)
        finally:
            await provider.close()

    asyncio.run(destroy())
    uid = next(iter(keys))
    started = time.monotonic()
    while True:
        with server.connect(context=context) as connection:
            item = kmip.item(connection.call(kmip.get(uid)))
        if item.result_status != ResultStatus.SUCCESS:
            break
        assert time.monotonic() - started < CHECK_INTERVAL + 5, "still served"
        time.sleep(0.1)
    assert item.result_reason == ResultReason.CRYPTOGRAPHIC_FAILURE
    # The built-in instance is unaffected.
    assert len(kmip.key_material(server.call(kmip.get(default_uid)))) == 32


def test_deleting_the_root_key_through_kmipd_shreds_the_instance_at_once(
    hsm_server: KmipdServer, tmp_path: Path
) -> None:
    server = hsm_server
    with https_client(server) as http:
        http.headers.update(bearer(server.admin_api_key))
        assert (
            http.post("/admin/v1/instances", json={"name": "hsm-b", "provider": "hsm"}).status_code
            == 201
        )
        issued = http.post(
            "/admin/v1/instances/hsm-b/certificates/issue", json={"common_name": "hsm-b"}
        ).json()
        creds = write_pair(
            tmp_path, "hsm-b", issued["certificate"]["pem"], issued["private_key_pem"]
        )
        context = server.tls_context(certificate=creds)
        with server.connect(context=context) as connection:
            uids = [kmip.created_uid(connection.call(kmip.create_aes())) for _ in range(5)]
            for uid in uids:
                assert len(kmip.key_material(connection.call(kmip.get(uid)))) == 32
        default_uid = kmip.created_uid(server.call(kmip.create_aes()))

        disabled = http.post("/admin/v1/instances/hsm-b/root-key/disable")
        assert disabled.status_code == 200 and disabled.json()["state"] == "disabled"
        with server.connect(context=context) as connection:
            item = kmip.item(connection.call(kmip.get(uids[0])))
        assert item.result_reason == ResultReason.CRYPTOGRAPHIC_FAILURE
        assert http.post("/admin/v1/instances/hsm-b/root-key/enable").json()["state"] == "active"
        with server.connect(context=context) as connection:
            assert len(kmip.key_material(connection.call(kmip.get(uids[0])))) == 32

        deleted = http.delete("/admin/v1/instances/hsm-b/root-key")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["state"] in ("deleted", "missing")

    def all_refused() -> None:
        with server.connect(context=context) as connection:
            for uid in uids:
                item = kmip.item(connection.call(kmip.get(uid)))
                assert item.result_status == ResultStatus.OPERATION_FAILED
                assert item.result_reason == ResultReason.CRYPTOGRAPHIC_FAILURE

    all_refused()  # immediately after the delete returned
    assert len(kmip.key_material(server.call(kmip.get(default_uid)))) == 32
    server.stop()
    server.start()
    all_refused()  # and after a restart
    assert len(kmip.key_material(server.call(kmip.get(default_uid)))) == 32
