"""The audit trail fails closed, on a real server: when no audit record can be written, a
KMIP Create, Get, Activate and Destroy, an inventory delete and a root key delete all fail,
and nothing changes (no key made, no material sent, no state or "last fetched" moved, the
root key still Active). Once the trail is writable again everything works, and
``kmipd audit verify`` finds the trail intact; a record changed in the database is found."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmipd.protocol._generated import Operation, ResultReason, ResultStatus
from kmipd.protocol.payloads import UidRequest
from tests.support import kmip
from tests.support.admin import bearer, https_client
from tests.support.keyprotect import FAST_RULES, KpClient
from tests.support.server import KmipdServer, init_server

REFUSAL = "the audit trail cannot be written"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KmipdServer]:
    kmipd = init_server(tmp_path / "data")
    kmipd.configure(keyprotect=FAST_RULES)
    kmipd.start()
    try:
        yield kmipd
    finally:
        kmipd.stop()


def break_sink(server: KmipdServer) -> None:
    with sqlite3.connect(server.database) as db:
        db.execute(
            "CREATE TRIGGER audit_sink_broken BEFORE INSERT ON audit "
            "BEGIN SELECT RAISE(ABORT, 'the audit sink is broken'); END"
        )


def mend_sink(server: KmipdServer) -> None:
    with sqlite3.connect(server.database) as db:
        db.execute("DROP TRIGGER audit_sink_broken")


def refused(response: bytes) -> None:
    item = kmip.item(response)
    assert item.result_status == ResultStatus.OPERATION_FAILED, item
    assert item.result_reason == ResultReason.GENERAL_FAILURE
    assert REFUSAL in (item.result_message or "")
    assert item.payload is None  # no key material, no UID


def snapshot(server: KmipdServer) -> dict[str, tuple[int, int | None, int]]:
    async def read(store):  # type: ignore[no-untyped-def]
        rows = await store.inventory("default")
        return {r.uid: (r.state, r.last_fetched, r.updated) for r in rows}

    return server.with_store(read)


def root_key_of(server: KmipdServer) -> str:
    async def read(store):  # type: ignore[no-untyped-def]
        return next(i.root_key_id for i in await store.instances() if i.name == "default")

    return server.with_store(read)


def audit_verify(server: KmipdServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kmipd", "audit", "verify", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_broken_audit_trail_refuses_everything_and_changes_nothing(
    server: KmipdServer,
) -> None:
    active = kmip.created_uid(server.call(kmip.create_aes()))
    kmip.ok(server.call(kmip.request(Operation.ACTIVATE, UidRequest(active))))
    material = kmip.key_material(server.call(kmip.get(active)))
    spare = kmip.created_uid(server.call(kmip.create_aes()))
    root = root_key_of(server)
    before = snapshot(server)

    break_sink(server)
    refused(server.call(kmip.create_aes()))
    refused(server.call(kmip.get(active)))
    refused(server.call(kmip.request(Operation.ACTIVATE, UidRequest(spare))))
    refused(server.call(kmip.request(Operation.DESTROY, UidRequest(spare))))
    with https_client(server) as http:
        http.headers.update(bearer(server.admin_api_key))
        deleted = http.delete(f"/admin/v1/instances/default/keys/{spare}")
        assert deleted.status_code == 503, deleted.text
        assert deleted.json()["error"]["code"] == "audit_unavailable"
        listed = http.get("/admin/v1/instances/default/keys")  # a read: refused too
        assert listed.status_code == 503, listed.text
    kp = KpClient(server, server.admin_api_key)
    try:
        gone = kp.request("DELETE", f"/keys/{root}", content_type=None)
        assert gone.status_code == 503, gone.text
    finally:
        kp.close()
    assert snapshot(server) == before  # nothing made, moved or fetched

    mend_sink(server)
    assert kmip.key_material(server.call(kmip.get(active))) == material  # root key intact
    kmip.created_uid(server.call(kmip.create_aes()))
    verified = audit_verify(server)
    assert verified.returncode == 0, verified.stderr
    assert "intact" in verified.stdout


def test_audit_verify_finds_a_changed_record(server: KmipdServer) -> None:
    kmip.created_uid(server.call(kmip.create_aes()))
    server.stop()
    with sqlite3.connect(server.database) as db:
        db.execute("UPDATE audit SET result = 'success' WHERE action = 'Create'")
        db.execute("UPDATE audit SET actor = 'nobody' WHERE seq = (SELECT MIN(seq) FROM audit)")
    verified = audit_verify(server)
    assert verified.returncode == 1
    assert "tampered" in verified.stderr and "modified" in verified.stderr
    assert "Traceback" not in verified.stderr
