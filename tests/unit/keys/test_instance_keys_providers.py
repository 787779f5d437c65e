"""Instance wrapping keys through root key providers, and the legacy rows before them."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import struct
from pathlib import Path

import pytest

from kmipd.keys.instance_keys import InstanceKeys, RootKeyUnavailable, _aad
from kmipd.keys.keyring import Keyring, KeyRules
from kmipd.keys.providers.base import MAGIC, parse_blob
from kmipd.store.records import InstanceRecord, WrappingKeyRecord
from kmipd.store.store import Store

RULES = KeyRules(action_delay=0.0, rotation_interval=0.0)


def _ring(tmp_path: Path) -> Keyring:
    return Keyring(tmp_path / "keyring" / "root-keys.json", master=os.urandom(32), rules=RULES)


def test_legacy_rows_written_by_bare_keyring_wrap_still_open(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    root = ring.create("root")
    legacy_key = os.urandom(32)
    legacy_blob = ring.wrap(root, legacy_key, _aad("default", 1))  # the pre-provider format
    assert not legacy_blob.startswith(MAGIC)

    async def scenario() -> None:
        store = Store.sqlite(tmp_path / "kmipd.db")
        await store.open()
        try:
            await store.add_instance(InstanceRecord("default", root, 0))
            await store.add_wrapping_key(WrappingKeyRecord("default", 1, root, legacy_blob, 0))
            keys = InstanceKeys(store, ring)
            assert await keys.current("default", root) == (1, legacy_key)
            assert await keys.key("default", 1) == legacy_key
            # A new instance's wrapping key is written through the provider (KRK1 header).
            await store.add_instance(InstanceRecord("fresh", root, 0))
            await keys.current("fresh", root)
            (record,) = await store.wrapping_keys("fresh")
            assert record.provider == "builtin"
            assert parse_blob(record.wrapped)[0].key_id == root
            # The root key disabled: both kinds of rows stop.
            ring.disable(root)
            keys.forget()
            for instance in ("default", "fresh"):
                with pytest.raises(RootKeyUnavailable):
                    await keys.key(instance, 1)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_old_database_gets_the_provider_columns(tmp_path: Path) -> None:
    path = tmp_path / "kmipd.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE instances (name TEXT PRIMARY KEY, root_key_id TEXT NOT NULL,
                                created INTEGER NOT NULL);
        CREATE TABLE wrapping_keys (instance TEXT NOT NULL, version INTEGER NOT NULL,
            root_key_id TEXT NOT NULL, wrapped BLOB NOT NULL, created INTEGER NOT NULL,
            PRIMARY KEY (instance, version));
        INSERT INTO instances VALUES ('default', 'rk', 1);
        """
    )
    db.execute(
        "INSERT INTO wrapping_keys VALUES ('default', 1, 'rk', ?, 1)", (struct.pack(">I", 1),)
    )
    db.commit()
    db.close()

    async def scenario() -> None:
        store = Store.sqlite(path)
        await store.open()
        try:
            (instance,) = await store.instances()
            assert instance.provider == "builtin"
            (record,) = await store.wrapping_keys("default")
            assert record.provider == "builtin"
        finally:
            await store.close()

    asyncio.run(scenario())


def test_unknown_provider_is_root_key_unavailable(tmp_path: Path) -> None:
    ring = _ring(tmp_path)

    async def scenario() -> None:
        store = Store.sqlite(tmp_path / "kmipd.db")
        await store.open()
        try:
            await store.add_instance(InstanceRecord("far", "some-key", 0, provider="gone"))
            keys = InstanceKeys(store, ring)
            with pytest.raises(RootKeyUnavailable, match="gone"):
                await keys.current("far", "some-key")
        finally:
            await store.close()

    asyncio.run(scenario())
