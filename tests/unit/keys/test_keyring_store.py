"""The keyring as a key store: material encrypted at rest under the master key, never in
plaintext in the keyring file or the database; master key rules; migration of the old
plaintext format; Key Protect's life cycle and time rules; instances stop with their key."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmipd.keys import master_key
from kmipd.keys.instance_keys import InstanceKeys, RootKeyUnavailable
from kmipd.keys.keyring import (
    ACTIVE,
    DAY,
    DEACTIVATED,
    DESTROYED,
    PER_REQUEST_REFRESH,
    SUSPENDED,
    InvalidKeyState,
    KeyDeleted,
    KeyNotFound,
    Keyring,
    KeyringError,
    KeyRules,
    PayloadRequired,
    RestoreExpired,
    RootKeyRequired,
    RotationNotPermitted,
    TooEarly,
    UnprocessableCiphertext,
)
from kmipd.store.records import InstanceRecord
from kmipd.store.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def forms(material: bytes) -> list[bytes]:
    """The raw, hex (both cases) and base64 forms of a secret."""
    return [
        material,
        material.hex().encode(),
        material.hex().upper().encode(),
        base64.b64encode(material),
        base64.urlsafe_b64encode(material).rstrip(b"="),
    ]


def decrypted_materials(data_dir: Path) -> list[bytes]:
    """Every version's material, opened with the master key (what must never be on disk)."""
    directory = data_dir / "keyring"
    master = base64.b64decode((directory / "master.key").read_text())
    document = json.loads((directory / "root-keys.json").read_text())
    found = []
    for key_id, entry in document["keys"].items():
        for version in entry.get("versions", []):
            blob = base64.b64decode(version["material"])
            aad = b"".join(
                len(p).to_bytes(4, "big") + p
                for p in (b"kmipd-keyring-material-v1", key_id.encode(), version["id"].encode())
            )
            found.append(AESGCM(master).decrypt(blob[:12], blob[12:], aad))
    return found


def test_no_key_material_in_plaintext_in_the_keyring_file_or_the_database(
    tmp_path: Path,
) -> None:
    ring = Keyring.in_data_dir(tmp_path)
    imported = os.urandom(32)
    standard = os.urandom(100)
    root = ring.create("root of default")
    ring.rotate(root)
    ring.create_key("imported", payload=imported)
    ring.create_key("standard", extractable=True, payload=standard)

    async def use_database() -> bytes:
        store = Store.sqlite(tmp_path / "kmipd.db")
        await store.open()
        try:
            await store.add_instance(InstanceRecord("default", root, 0))
            keys = InstanceKeys(store, ring)
            _, wrapping_key = await keys.current("default", root)
            return wrapping_key
        finally:
            await store.close()

    wrapping_key = asyncio.run(use_database())
    materials = decrypted_materials(tmp_path)
    assert imported in materials and standard in materials and len(materials) == 4
    keyring_bytes = (tmp_path / "keyring" / "root-keys.json").read_bytes()
    database = b"".join(p.read_bytes() for p in tmp_path.glob("kmipd.db*"))
    assert database
    for secret in [*materials, wrapping_key]:
        for form in forms(secret):
            assert form not in keyring_bytes
            assert form not in database
    master = (tmp_path / "keyring" / "master.key").read_text().strip().encode()
    assert master not in keyring_bytes and master not in database


def test_master_key_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(master_key.MASTER_KEY_ENV, raising=False)
    ring = Keyring.in_data_dir(tmp_path)
    key_id = ring.create("root")
    wrapped = ring.wrap(key_id, b"dek", b"aad")
    path = tmp_path / "keyring" / "master.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(base64.b64decode(path.read_text())) == 32

    # The same key through the environment opens it; another key is refused.
    monkeypatch.setenv(master_key.MASTER_KEY_ENV, path.read_text().strip())
    assert Keyring.in_data_dir(tmp_path).unwrap(key_id, wrapped, b"aad") == b"dek"
    monkeypatch.setenv(master_key.MASTER_KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(KeyringError, match="does not open"):
        Keyring.in_data_dir(tmp_path)
    monkeypatch.setenv(master_key.MASTER_KEY_ENV, "c2hvcnQ=")
    with pytest.raises(KeyringError, match="32 bytes"):
        Keyring.in_data_dir(tmp_path)
    monkeypatch.delenv(master_key.MASTER_KEY_ENV)

    path.chmod(0o640)
    with pytest.raises(KeyringError, match="0600"):
        Keyring.in_data_dir(tmp_path)
    path.chmod(0o600)
    # A lost master key is never silently replaced: the material would be lost with it.
    path.unlink()
    with pytest.raises(KeyringError, match="missing"):
        Keyring.in_data_dir(tmp_path)
    assert not path.exists()


def test_environment_key_makes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(master_key.MASTER_KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    ring = Keyring.in_data_dir(tmp_path)
    ring.create("root")
    assert not (tmp_path / "keyring" / "master.key").exists()


def test_old_plaintext_keyring_is_migrated(tmp_path: Path) -> None:
    directory = tmp_path / "keyring"
    directory.mkdir()
    material = os.urandom(32)
    path = directory / "root-keys.json"
    old = {
        "format": 1,
        "keys": {
            "0d4d6c8e-4b1e-4b8a-9a5e-3f1e2d3c4b5a": {
                "name": "root",
                "created": 1_700_000_000,
                "versions": [base64.b64encode(material).decode()],
            },
            "1d4d6c8e-4b1e-4b8a-9a5e-3f1e2d3c4b5a": {
                "name": "gone",
                "created": 1_700_000_000,
                "versions": [],
                "deleted": int(time.time()),
            },
        },
    }
    path.write_text(json.dumps(old))
    path.chmod(0o600)
    # A blob wrapped by the old code (format 1, version 1) still opens after the migration.
    nonce = os.urandom(12)
    wrapped = b"\x01\x00\x00\x00\x01" + nonce + AESGCM(material).encrypt(nonce, b"dek", b"aad")
    ring = Keyring.in_data_dir(tmp_path)
    assert ring.unwrap("0d4d6c8e-4b1e-4b8a-9a5e-3f1e2d3c4b5a", wrapped, b"aad") == b"dek"
    assert ring.info("1d4d6c8e-4b1e-4b8a-9a5e-3f1e2d3c4b5a").deleted
    assert ring.get("1d4d6c8e-4b1e-4b8a-9a5e-3f1e2d3c4b5a").latest.id  # every key has a version
    with pytest.raises(RestoreExpired):  # the old format erased a deleted key's material
        ring.restore("1d4d6c8e-4b1e-4b8a-9a5e-3f1e2d3c4b5a")
    text = path.read_bytes()
    for form in forms(material):
        assert form not in text
    assert json.loads(text)["format"] == 2
    assert (directory / "master.key").exists()


def test_life_cycle_and_time_rules(tmp_path: Path) -> None:
    clock = Clock()
    ring = Keyring.in_data_dir(tmp_path, clock=clock)
    key = ring.create_key("crk", created_by="svc")
    wrapped = ring.wrap_dek(key.id, None, ["a"])
    assert wrapped.plaintext is not None and wrapped.version == key.id

    ring.rotate_key(key.id)
    clock.now += 60
    with pytest.raises(RotationNotPermitted):
        ring.rotate_key(key.id)
    clock.now += 3600
    latest = ring.rotate_key(key.id).latest.id
    result = ring.unwrap_dek(key.id, wrapped.ciphertext, ["a"])
    assert result.plaintext == wrapped.plaintext and result.latest == latest
    assert result.rewrapped is not None
    with pytest.raises(UnprocessableCiphertext):
        ring.unwrap_dek(key.id, wrapped.ciphertext, ["b"])

    assert ring.disable(key.id).state == SUSPENDED
    with pytest.raises(InvalidKeyState):
        ring.wrap_dek(key.id, None)
    with pytest.raises(TooEarly):
        ring.enable(key.id)
    clock.now += 31
    assert ring.enable(key.id).state == ACTIVE

    deleted = ring.delete_key(key.id, "svc")
    assert deleted.state == DESTROYED and deleted.deleted_by == "svc"
    with pytest.raises(KeyDeleted):
        ring.delete_key(key.id)
    with pytest.raises(TooEarly):
        ring.restore(key.id)
    with pytest.raises(TooEarly):
        ring.purge(key.id)
    clock.now += 60
    assert ring.restore(key.id).state == ACTIVE
    assert ring.unwrap_dek(key.id, wrapped.ciphertext, ["a"]).plaintext == wrapped.plaintext

    # After the restore window the material is erased at the next change: for good.
    ring.delete_key(key.id)
    clock.now += 30 * DAY + 1
    ring.create("anything")  # a change of the keyring
    document = json.loads((tmp_path / "keyring" / "root-keys.json").read_text())
    assert all(v["material"] is None for v in document["keys"][key.id]["versions"])
    with pytest.raises(RestoreExpired):
        ring.restore(key.id)
    assert ring.get(key.id).shredded
    ring.purge(key.id)
    with pytest.raises(KeyNotFound):
        ring.get(key.id)


def test_expiration_deactivates_unwrap_only(tmp_path: Path) -> None:
    clock = Clock()
    ring = Keyring.in_data_dir(tmp_path, clock=clock)
    key = ring.create_key("expiring", expiration=clock.now + 100)
    wrapped = ring.wrap_dek(key.id, b"secret")
    clock.now += 101
    assert ring.get(key.id).state == DEACTIVATED
    with pytest.raises(InvalidKeyState):
        ring.wrap_dek(key.id, b"secret")
    assert ring.unwrap_dek(key.id, wrapped.ciphertext).plaintext == b"secret"


def test_rules_for_imported_and_standard_keys(tmp_path: Path) -> None:
    ring = Keyring.in_data_dir(tmp_path, rules=KeyRules(rotation_interval=0))
    imported = ring.create_key("imp", payload=os.urandom(24))
    with pytest.raises(PayloadRequired):
        ring.rotate_key(imported.id)
    with pytest.raises(PayloadRequired):
        ring.rotate(imported.id)
    ring.rotate_key(imported.id, os.urandom(16))
    standard = ring.create_key("std", extractable=True, payload=b"s" * 10)
    assert ring.payload(standard.id) == b"s" * 10
    assert ring.payload(imported.id) is None
    for action in (ring.disable, ring.restore, lambda ref: ring.wrap_dek(ref, None)):
        with pytest.raises(RootKeyRequired):
            action(standard.id)


def test_other_processes_changes_are_seen(tmp_path: Path) -> None:
    server = Keyring.in_data_dir(tmp_path)
    cli = Keyring.in_data_dir(tmp_path)
    key_id = cli.create("made by the CLI")
    wrapped = server.wrap(key_id, b"k", b"a")
    made_here = server.create("made by the server")
    assert {k.id for k in cli.list()} >= {key_id, made_here}
    cli.delete(key_id)
    with pytest.raises(KeyringError):
        server.unwrap(key_id, wrapped, b"a")


def test_instances_stop_when_their_root_key_is_disabled_or_deleted(tmp_path: Path) -> None:
    ring = Keyring.in_data_dir(tmp_path, rules=KeyRules(action_delay=0))
    other_process = Keyring.in_data_dir(tmp_path)
    root = ring.create("root")

    async def scenario() -> None:
        store = Store.sqlite(tmp_path / "kmipd.db")
        await store.open()
        try:
            await store.add_instance(InstanceRecord("default", root, 0))
            keys = InstanceKeys(store, ring)
            ring.add_listener(keys.forget_root_key)
            version, key = await keys.current("default", root)
            assert await keys.key("default", version) == key
            ring.disable(root)  # through this process: the hook drops the cache
            with pytest.raises(RootKeyUnavailable):
                await keys.key("default", version)
            with pytest.raises(RootKeyUnavailable):
                await keys.current("default", root)
            ring.enable(root)
            assert await keys.key("default", version) == key
            other_process.delete_key(root)
            # Another process's change: the per-request check sees it within
            # PER_REQUEST_REFRESH (it does not ask the storage on every request).
            await asyncio.sleep(PER_REQUEST_REFRESH * 1.5)
            with pytest.raises(RootKeyUnavailable):
                await keys.key("default", version)
            with pytest.raises(RootKeyUnavailable):
                await keys.current("default", root)
        finally:
            await store.close()

    asyncio.run(scenario())
