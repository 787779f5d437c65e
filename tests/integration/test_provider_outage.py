"""A remote root key provider outage fails closed and heals by itself.

kmipd A keeps an instance's root key in a remote Key Protect (kmipd B). With B stopped:
``kmipd serve`` of A refuses to start and says which provider table to fix; a KMIP Get on a
running A whose wrapping key is not in memory fails cleanly with Cryptographic Failure (no
traceback in the log, nothing stored unwrapped); when B is back, A serves again on the next
request without a restart.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmipd import config
from kmipd.protocol._generated import ResultReason, ResultStatus
from tests.integration.test_canary import register_aes, scan, snapshot
from tests.support import kmip
from tests.support.admin import bearer, https_client, write_pair
from tests.support.keyprotect import FAST_RULES, instance_id, new_api_key
from tests.support.server import KmipdServer, init_server

CHECK_INTERVAL = 0.5
ROOT_KEY_MESSAGE = "the instance's root key is unavailable; its keys cannot be served"


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[KmipdServer]:
    server = init_server(tmp_path / "remote")
    server.configure(keyprotect=FAST_RULES)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def local(tmp_path: Path, remote: KmipdServer) -> Iterator[KmipdServer]:
    server = init_server(tmp_path / "local")
    settings = config.load(server.data_dir)
    provider = config.ProviderSettings(
        "remote",
        "keyprotect",
        {
            "url": remote.https_url,
            "instance_id": instance_id(remote),
            "api_key": new_api_key(remote, "Manager", "kmipd-a"),
            "ca": str(remote.ca),
            "timeout": 2.0,
        },
    )
    settings = dataclasses.replace(
        settings,
        root_key_providers=(provider,),
        root_keys=config.RootKeysSettings(check_interval=CHECK_INTERVAL),
    )
    (server.data_dir / config.CONFIG_FILE).write_text(config.render(settings), encoding="utf-8")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(server: KmipdServer, creds: tuple[Path, Path], uid: str) -> tuple:
    with server.connect(context=server.tls_context(certificate=creds)) as connection:
        result = kmip.item(connection.call(kmip.get(uid)))
    material = None
    if result.result_status == ResultStatus.SUCCESS:
        material = result.payload.managed_object.key_block.key_value.key_material
    return result.result_status, result.result_reason, result.result_message, material


def test_outage_fails_closed_and_heals_without_a_restart(
    local: KmipdServer, remote: KmipdServer, tmp_path: Path
) -> None:
    with https_client(local) as http:
        http.headers.update(bearer(local.admin_api_key))
        created = http.post("/admin/v1/instances", json={"name": "r", "provider": "remote"})
        assert created.status_code == 201, created.text
        issued = http.post(
            "/admin/v1/instances/r/certificates/issue", json={"common_name": "r client"}
        )
        assert issued.status_code == 201, issued.text
    body = issued.json()
    creds = write_pair(tmp_path, "r", body["certificate"]["pem"], body["private_key_pem"])
    canary = os.urandom(32)
    with local.connect(context=local.tls_context(certificate=creds)) as connection:
        uid = kmip.created_uid(connection.call(register_aes(canary)))
        others = [kmip.created_uid(connection.call(kmip.create_aes())) for _ in range(10)]
    assert get(local, creds, uid)[3] == canary

    # The provider is down: kmipd A refuses to start, and says which table to fix.
    local.stop()
    remote.stop()
    with pytest.raises(RuntimeError) as failure:
        local.start()
    local.process = None
    message = str(failure.value)
    assert "root key provider 'remote'" in message and "unreachable" in message, message
    assert "[root_key_providers.remote]" in message, message
    assert "Traceback" not in message

    # A starts while B is up (nothing unwrapped yet: start-up only checks B's health) ...
    remote.start()
    local.start()
    # ... then B goes down before the first request needs the instance's wrapping key.
    remote.stop()
    down = time.monotonic()
    failed = [get(local, creds, u) for u in [uid, *others]]
    assert set(failed) == {
        (
            ResultStatus.OPERATION_FAILED,
            ResultReason.CRYPTOGRAPHIC_FAILURE,
            ROOT_KEY_MESSAGE,
            None,
        )
    }
    failing_for = time.monotonic() - down
    time.sleep(CHECK_INTERVAL * 2)  # the periodic check runs against the dead provider too
    assert get(local, creds, uid)[:3] == failed[0][:3]
    # Nothing was stored unwrapped while failing.
    assert scan(snapshot(local.data_dir), {"canary": canary}) == []

    # B is back: A serves again by itself, on the next request.
    remote.start()
    back = time.monotonic()
    while True:
        outcome = get(local, creds, uid)
        if outcome[0] == ResultStatus.SUCCESS:
            break
        assert time.monotonic() - back < CHECK_INTERVAL + 10, outcome
        time.sleep(0.1)
    resumed_after = time.monotonic() - back
    assert outcome[3] == canary
    assert all(get(local, creds, u)[0] == ResultStatus.SUCCESS for u in others)
    log = local.log()
    assert "Traceback" not in log, log
    assert base64.b64encode(canary).decode() not in log
    print(f"failing for {failing_for:.2f}s while down; resumed {resumed_after:.2f}s after")
