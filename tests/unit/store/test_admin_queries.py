"""The store's management additions: a database of the first release is refused by ``open``
and upgraded by ``open(migrate=True)`` (``kmipd migrate``); the audit query filters and pages;
deleting an instance removes all of it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from kmipd.audit.chain import AuditChain
from kmipd.store.migrations import LATEST, SchemaMismatch
from kmipd.store.records import (
    AuditQuery,
    AuditRecord,
    CertificateRecord,
    InstanceRecord,
    ObjectRecord,
)
from kmipd.store.store import Store

# The schema as the first release made it (before the management API's additions).
FIRST_RELEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    name TEXT PRIMARY KEY,
    root_key_id TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
    fingerprint TEXT PRIMARY KEY,
    instance TEXT NOT NULL REFERENCES instances(name),
    pem TEXT NOT NULL,
    subject TEXT NOT NULL,
    is_ca INTEGER NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wrapping_keys (
    instance TEXT NOT NULL REFERENCES instances(name),
    version INTEGER NOT NULL,
    root_key_id TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (instance, version)
);
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL UNIQUE,
    instance TEXT NOT NULL REFERENCES instances(name),
    object_type INTEGER NOT NULL,
    state INTEGER NOT NULL,
    algorithm INTEGER,
    length INTEGER,
    name TEXT,
    attributes BLOB NOT NULL,
    sealed BLOB,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    last_fetched INTEGER,
    revision INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    service_id TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    revoked INTEGER,
    description TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS objects_instance ON objects (instance, object_type, state);
CREATE INDEX IF NOT EXISTS objects_name ON objects (instance, name);
"""

TEST_CHAIN = AuditChain(b"\x01" * 32)


def test_a_first_release_database_is_refused_until_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(FIRST_RELEASE_SCHEMA)
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute("INSERT INTO instances VALUES ('old', 'rk', 1)")
    db.execute(
        "INSERT INTO objects (uid, instance, object_type, state, attributes, created, updated) "
        "VALUES ('u1', 'old', 2, 1, x'', 1, 1)"
    )
    db.commit()
    db.close()

    async def run() -> None:
        with pytest.raises(SchemaMismatch, match="version 1, this kmipd needs version"):
            await Store.sqlite(path).open()
        store = Store.sqlite(path)
        assert await store.open(migrate=True) == list(range(2, LATEST + 1))
        try:
            record = await store.get_object("old", "u1")
            assert record is not None and record.last_fetched_by is None
            record.last_fetched_by = "ab" * 32
            assert await store.update_object(record)
            again = await store.get_object("old", "u1")
            assert again is not None and again.last_fetched_by == "ab" * 32
            await store.add_audit(
                AuditRecord(5, "me", "https", "x", "old", None, "success"), TEST_CHAIN
            )
            assert (await store.audit_records(AuditQuery()))[1] == 1
        finally:
            await store.close()
        # Opening again changes nothing.
        store = Store.sqlite(path)
        assert await store.open() == []
        await store.close()

    asyncio.run(run())


def test_audit_filters_and_pages_newest_first(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store.sqlite(tmp_path / "a.db")
        await store.open()
        try:
            for n in range(10):
                await store.add_audit(
                    AuditRecord(
                        time=100 + n,
                        actor="fp" if n % 2 else "admin",
                        channel="kmip" if n % 2 else "https",
                        action="Get",
                        instance="i",
                        uid=f"u{n}",
                        result="failure" if n == 3 else "success",
                        reason="ItemNotFound" if n == 3 else None,
                    ),
                    TEST_CHAIN,
                )
            records, total = await store.audit_records(AuditQuery(limit=3, offset=1))
            assert total == 10 and [r.uid for r in records] == ["u8", "u7", "u6"]
            records, total = await store.audit_records(AuditQuery(actor="fp", since=105))
            assert total == 3 and [r.uid for r in records] == ["u9", "u7", "u5"]
            records, _ = await store.audit_records(AuditQuery(result="failure"))
            assert [(r.uid, r.reason) for r in records] == [("u3", "ItemNotFound")]
            assert (await store.audit_records(AuditQuery(until=99)))[1] == 0
        finally:
            await store.close()

    asyncio.run(run())


def test_deleting_an_instance_removes_its_certificates_and_objects(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store.sqlite(tmp_path / "d.db")
        await store.open()
        try:
            for name in ("a", "b"):
                await store.add_instance(InstanceRecord(name, "rk", 1))
                await store.add_certificate(
                    CertificateRecord(f"fp-{name}", name, "pem", "CN=x", False, 1)
                )
                await store.insert_object(ObjectRecord(f"u-{name}", name, 2, 1, b"", None, 1, 1))
            assert await store.delete_instance("a")
            assert not await store.delete_instance("a")
            assert [i.name for i in await store.instances()] == ["b"]
            assert [c.fingerprint for c in await store.certificate_details()] == ["fp-b"]
            assert await store.get_object("a", "u-a") is None
            assert await store.get_object("b", "u-b") is not None
            assert await store.object_counts("b") == {1: 1}
            await store.certificate_seen("fp-b", 42)
            assert (await store.certificate_details(fingerprint="fp-b"))[0].last_seen == 42
        finally:
            await store.close()

    asyncio.run(run())
