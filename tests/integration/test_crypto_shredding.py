"""Crypto-shredding: deleting an instance's root key makes every one of its keys unreadable
at once, with one documented Result Reason and message, and leaves other instances alone.

Two instances A and B on the built-in keyring with N keys each. A's root key is deleted
through kmipd's Key Protect-compatible API: the moment the DELETE returns, 100% of A's keys
fail Get with Cryptographic Failure and the message the README documents, while all of B's
keys are served with identical bytes; after a restart still so. Disabling instead of
deleting does the same, and enabling restores A's keys.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmipd.protocol._generated import ResultReason, ResultStatus
from tests.support import kmip
from tests.support.keyprotect import FAST_RULES, KpClient, new_api_key
from tests.support.server import KmipdServer, init_server

N = 50
# The documented answer to a Get of a key whose instance's root key is unusable (README).
ROOT_KEY_MESSAGE = "the instance's root key is unavailable; its keys cannot be served"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KmipdServer]:
    server = init_server(tmp_path / "data")
    server.configure(keyprotect=FAST_RULES)
    server.add_instance("A")
    server.add_instance("B")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_keys(server: KmipdServer, instance: str) -> dict[str, bytes]:
    keys = {}
    with server.connect(instance) as connection:
        for _ in range(N):
            uid = kmip.created_uid(connection.call(kmip.create_aes()))
            keys[uid] = kmip.key_material(connection.call(kmip.get(uid)))
    return keys


def get_all(server: KmipdServer, instance: str, uids: list[str]) -> list[tuple]:
    """(status, reason, message, material or None) of a Get of each UID."""
    outcomes = []
    with server.connect(instance) as connection:
        for uid in uids:
            result = kmip.item(connection.call(kmip.get(uid)))
            material = None
            if result.result_status == ResultStatus.SUCCESS:
                material = result.payload.managed_object.key_block.key_value.key_material
            outcomes.append(
                (result.result_status, result.result_reason, result.result_message, material)
            )
    return outcomes


def assert_shredded(server: KmipdServer, keys: dict[str, bytes]) -> None:
    outcomes = get_all(server, "A", list(keys))
    assert len(outcomes) == N
    assert set(outcomes) == {
        (
            ResultStatus.OPERATION_FAILED,
            ResultReason.CRYPTOGRAPHIC_FAILURE,
            ROOT_KEY_MESSAGE,
            None,
        )
    }


def assert_served(server: KmipdServer, instance: str, keys: dict[str, bytes]) -> None:
    outcomes = get_all(server, instance, list(keys))
    assert [o[3] for o in outcomes] == list(keys.values())


def root_key_of(server: KmipdServer, name: str) -> str:
    instances = server.with_store(lambda store: store.instances())
    (record,) = [r for r in instances if r.name == name]
    return str(record.root_key_id)


def test_deleting_the_root_key_shreds_one_instance_only(server: KmipdServer) -> None:
    a_keys, b_keys = make_keys(server, "A"), make_keys(server, "B")
    assert_served(server, "A", a_keys)
    kp = KpClient(server, new_api_key(server, "Manager"))
    try:
        deleted = kp.request("DELETE", f"/keys/{root_key_of(server, 'A')}")
        assert deleted.status_code in (200, 204), deleted.text
        started = time.monotonic()
        assert_shredded(server, a_keys)  # immediately: no grace period, no cache
        elapsed = time.monotonic() - started
        assert_served(server, "B", b_keys)
        # New keys cannot be made under a deleted root key either.
        with server.connect("A") as connection:
            refused = kmip.item(connection.call(kmip.create_aes()))
        assert refused.result_reason == ResultReason.CRYPTOGRAPHIC_FAILURE
        assert refused.result_message == ROOT_KEY_MESSAGE
    finally:
        kp.close()
    server.stop()
    server.start()
    assert_shredded(server, a_keys)
    assert_served(server, "B", b_keys)
    assert "Traceback" not in server.log()
    assert elapsed < 10


def test_disabling_the_root_key_stops_one_instance_until_enabled(server: KmipdServer) -> None:
    a_keys, b_keys = make_keys(server, "A"), make_keys(server, "B")
    root = root_key_of(server, "A")
    kp = KpClient(server, new_api_key(server, "Manager"))
    try:
        disabled = kp.action(root, "disable")
        assert disabled.status_code == 204, disabled.text
        assert_shredded(server, a_keys)
        assert_served(server, "B", b_keys)
        server.stop()
        server.start()
        assert_shredded(server, a_keys)
        assert_served(server, "B", b_keys)
        enabled = kp.action(root, "enable")
        assert enabled.status_code == 204, enabled.text
        assert_served(server, "A", a_keys)  # at once, without a restart
        assert_served(server, "B", b_keys)
    finally:
        kp.close()


def test_the_readme_documents_the_reason_and_message() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "Cryptographic Failure" in readme
    assert ROOT_KEY_MESSAGE in readme
