"""The object store contract: every engine (SQLite, PostgreSQL) behaves the same.

Each test takes ``store_url`` and so runs once per engine, on a new database. Two ``Store``
objects on one database stand for two processes or two nodes of a cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from kmipd.audit.chain import AuditChain
from kmipd.store import migrations
from kmipd.store.records import (
    ApiKeyRecord,
    AuditQuery,
    AuditRecord,
    CertificateRecord,
    InstanceRecord,
    ObjectQuery,
    ObjectRecord,
    WrappingKeyRecord,
)
from kmipd.store.rewrap_queries import version_bytes
from kmipd.store.store import Store, StoreError, StoreUnavailable

T = TypeVar("T")

TEST_CHAIN = AuditChain(b"\x01" * 32)


def run(test: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(test())  # type: ignore[arg-type]


def make(url: str, tmp_path: Path) -> Store:
    return Store.from_url(url, base=tmp_path, pool_size=4)


class Opened:
    """``async with Opened(url, tmp_path) as store``: an open store, closed afterwards."""

    def __init__(self, url: str, tmp_path: Path, *, migrate: bool = False) -> None:
        self.store = make(url, tmp_path)
        self.migrate = migrate

    async def __aenter__(self) -> Store:
        await self.store.open(migrate=self.migrate)
        return self.store

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()


def key(
    uid: str,
    instance: str = "i1",
    *,
    sealed: bytes | None = b"\x01\x00\x00\x00\x01xx",
    state: int = 1,
    name: str | None = None,
    created: int = 1,
) -> ObjectRecord:
    return ObjectRecord(uid, instance, 2, state, b"attrs", sealed, created, created, 3, 256, name)


async def with_instances(store: Store, *names: str) -> None:
    for name in names:
        await store.add_instance(InstanceRecord(name, f"rk-{name}", 1))


# --- schema ---------------------------------------------------------------------------------


def test_a_new_database_gets_the_latest_schema_and_reopens_unchanged(
    store_url: str, tmp_path: Path
) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as store:
            assert store.schema_version == migrations.LATEST
        store = make(store_url, tmp_path)
        assert await store.open() == []
        await store.close()

    run(test)


def test_a_database_behind_is_refused_until_migrated(store_url: str, tmp_path: Path) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as store:
            await store._write("UPDATE schema_version SET version = ?", (1,))
            await store._write("DROP TABLE events")
        with pytest.raises(migrations.SchemaMismatch, match="run 'kmipd migrate'"):
            await make(store_url, tmp_path).open()
        async with Opened(store_url, tmp_path, migrate=True) as store:
            assert store.schema_version == migrations.LATEST
            assert await store.add_event("k", "s", 1.0) >= 1

    run(test)


def test_a_database_ahead_is_refused(store_url: str, tmp_path: Path) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as store:
            await store._write("UPDATE schema_version SET version = ?", (migrations.LATEST + 1,))
        for migrate in (False, True):
            with pytest.raises(migrations.SchemaMismatch, match="newer than this kmipd"):
                await make(store_url, tmp_path).open(migrate=migrate)

    run(test)


# --- objects --------------------------------------------------------------------------------


def test_objects_insert_get_find_and_delete(store_url: str, tmp_path: Path) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as store:
            await with_instances(store, "i1", "i2")
            await store.insert_object(key("a", name="alpha"))
            await store.insert_object(key("b", state=2))
            await store.insert_object(key("c", "i2", sealed=None))
            got = await store.get_object("i1", "a")
            assert got is not None and got.sealed == b"\x01\x00\x00\x00\x01xx"
            assert got.attributes == b"attrs" and got.name == "alpha" and got.revision == 0
            assert await store.get_object("i2", "a") is None  # another instance's key
            found = await store.find_objects(ObjectQuery("i1"))
            assert [r.uid for r in found] == ["a", "b"]  # creation order
            assert [r.uid for r in await store.find_objects(ObjectQuery("i1", states=(2,)))] == [
                "b"
            ]
            assert [r.uid for r in await store.find_objects(ObjectQuery("i1", name="alpha"))] == [
                "a"
            ]
            by_uid = await store.find_objects(ObjectQuery("i1", uids=("b", "c")))
            assert [r.uid for r in by_uid] == ["b"]
            assert await store.count_objects() == {"i1": 2, "i2": 1}
            assert await store.object_counts("i1") == {1: 1, 2: 1}
            inventory = await store.inventory("i2")
            assert [(r.uid, r.has_material) for r in inventory] == [("c", False)]
            assert await store.delete_object("i1", "a")
            assert not await store.delete_object("i1", "a")
            assert await store.get_object("i1", "a") is None

    run(test)


def test_a_duplicate_uid_is_refused(store_url: str, tmp_path: Path) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as store:
            await with_instances(store, "i1")
            await store.insert_object(key("a"))
            with pytest.raises(StoreError, match="write refused"):
                await store.insert_object(key("a"))
            assert len(await store.find_objects(ObjectQuery("i1"))) == 1

    run(test)


def test_updates_are_compare_and_swap_across_two_stores(store_url: str, tmp_path: Path) -> None:
    """Two nodes read revision 0 of the same key and both write: exactly one wins, and the
    loser's write changes nothing."""

    async def test() -> None:
        async with Opened(store_url, tmp_path) as node_a, Opened(store_url, tmp_path) as node_b:
            await with_instances(node_a, "i1")
            await node_a.insert_object(key("k"))
            read_a = await node_a.get_object("i1", "k")
            read_b = await node_b.get_object("i1", "k")
            assert read_a is not None and read_b is not None
            read_a.state, read_b.state = 3, 5
            results = await asyncio.gather(
                node_a.update_object(read_a), node_b.update_object(read_b)
            )
            assert sorted(results) == [False, True]
            final = await node_b.get_object("i1", "k")
            assert final is not None and final.revision == 1
            assert final.state == (3 if results[0] else 5)

    run(test)


def test_many_concurrent_increments_lose_nothing(store_url: str, tmp_path: Path) -> None:
    """Read-modify-write with retry from two stores: every increment lands exactly once."""

    async def bump(store: Store, times: int) -> None:
        for _ in range(times):
            while True:
                record = await store.get_object("i1", "k")
                assert record is not None
                record.length = (record.length or 0) + 1
                if await store.update_object(record):
                    break

    async def test() -> None:
        async with Opened(store_url, tmp_path) as node_a, Opened(store_url, tmp_path) as node_b:
            await with_instances(node_a, "i1")
            await node_a.insert_object(ObjectRecord("k", "i1", 2, 1, b"", None, 1, 1, length=0))
            await asyncio.gather(bump(node_a, 25), bump(node_b, 25), bump(node_a, 25))
            final = await node_b.get_object("i1", "k")
            assert final is not None and final.length == 75 and final.revision == 75

    run(test)


def test_restore_puts_a_row_back_only_at_the_expected_revision(
    store_url: str, tmp_path: Path
) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as store:
            await with_instances(store, "i1")
            original = key("k")
            await store.insert_object(original)
            changed = await store.get_object("i1", "k")
            assert changed is not None
            changed.state = 2
            assert await store.update_object(changed)  # now at revision 1
            assert not await store.restore_object(key("k"), 0)
            assert await store.restore_object(key("k"), 1)
            back = await store.get_object("i1", "k")
            assert back is not None and back.state == 1 and back.revision == 2

    run(test)


# --- instances, certificates, wrapping keys, API keys ---------------------------------------


def test_instances_certificates_and_wrapping_keys(store_url: str, tmp_path: Path) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as store:
            await store.add_instance(InstanceRecord("b", "rk", 5, provider="hsm"))
            await store.add_instance(InstanceRecord("a", "rk2", 6))
            with pytest.raises(StoreError):
                await store.add_instance(InstanceRecord("a", "rk3", 7))
            assert [(i.name, i.provider) for i in await store.instances()] == [
                ("a", "builtin"),
                ("b", "hsm"),
            ]
            assert await store.set_rotation_days("a", 90.5)
            assert not await store.set_rotation_days("nope", 1)
            await store.set_last_rotated("a", 1_700_000_000.25)
            a = (await store.instances())[0]
            assert a.rotation_days == 90.5 and a.last_rotated == 1_700_000_000.25
            await store.add_certificate(CertificateRecord("fp1", "a", "PEM", "CN=x", True, 9))
            with pytest.raises(StoreError):  # an unknown instance
                await store.add_certificate(CertificateRecord("fp2", "z", "PEM", "CN=y", 0, 9))
            assert [(c.fingerprint, c.is_ca) for c in await store.certificates("a")] == [
                ("fp1", True)
            ]
            await store.certificate_seen("fp1", 77)
            assert (await store.certificate_details(fingerprint="fp1"))[0].last_seen == 77
            assert await store.remove_certificate("fp1")
            assert not await store.remove_certificate("fp1")
            blob = bytes(range(256))
            await store.add_wrapping_key(WrappingKeyRecord("a", 1, "rk2", blob, 3))
            await store.add_wrapping_key(WrappingKeyRecord("a", 2, "rk2", b"\x00" * 40, 4))
            with pytest.raises(StoreError):
                await store.add_wrapping_key(WrappingKeyRecord("a", 2, "rk2", b"", 4))
            keys = await store.wrapping_keys("a")
            assert [(k.version, k.wrapped) for k in keys] == [(1, blob), (2, b"\x00" * 40)]
            await store.set_root_key_version("a", 2, 7)
            assert await store.root_key_versions("a") == {1: None, 2: 7}
            assert await store.delete_instance("b")
            assert await store.delete_instance("a")
            assert await store.instances() == []

    run(test)


def test_api_keys(store_url: str, tmp_path: Path) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as store:
            await store.add_api_key(ApiKeyRecord("id1", "svc", "Manager", "h1", 1))
            await store.add_api_key(ApiKeyRecord("id2", "svc", "Reader", "h2", 2, None, "d"))
            with pytest.raises(StoreError):  # secret hashes are unique
                await store.add_api_key(ApiKeyRecord("id3", "svc", "Reader", "h2", 3))
            assert (await store.api_key(secret_hash="h2")) == ApiKeyRecord(
                "id2", "svc", "Reader", "h2", 2, None, "d"
            )
            assert await store.revoke_api_key("id1", 10)
            assert not await store.revoke_api_key("id1", 11)
            first = await store.api_key(key_id="id1")
            assert first is not None and first.revoked == 10
            assert [k.id for k in await store.api_keys()] == ["id1", "id2"]

    run(test)


# --- leases, re-wrap, events, audit ---------------------------------------------------------


def test_a_lease_has_one_owner_across_stores_until_it_expires(
    store_url: str, tmp_path: Path
) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as node_a, Opened(store_url, tmp_path) as node_b:
            won = await asyncio.gather(
                node_a.take_lease("job", "A", 100.0, 110.0),
                node_b.take_lease("job", "B", 100.0, 110.0),
            )
            assert sorted(won) == [False, True]
            owner, other = ("A", node_b) if won[0] else ("B", node_a)
            thief = "B" if owner == "A" else "A"
            assert not await other.take_lease("job", thief, 105.0, 115.0)
            assert await node_a.take_lease("job", owner, 105.0, 120.0)  # renewal
            assert await other.take_lease("job", thief, 120.5, 130.0)  # expired: taken over
            await node_a.release_lease("job", thief)
            assert await node_a.take_lease("job", owner, 121.0, 131.0)

    run(test)


def test_rewrap_reads_versions_in_sql_and_retires_only_unused_keys(
    store_url: str, tmp_path: Path
) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as store:
            await with_instances(store, "i1")
            for version in (1, 2):
                await store.add_wrapping_key(WrappingKeyRecord("i1", version, "rk", b"w", 1))
            for n, version in enumerate((1, 1, 2)):
                sealed = b"\x01" + version_bytes(version) + b"body"
                await store.insert_object(key(f"k{n}", sealed=sealed))
            await store.insert_object(key("empty", sealed=None))
            assert await store.sealed_versions("i1") == {1: 2, 2: 1}
            assert not await store.retire_wrapping_key("i1", 1)  # still in use
            job = await store.start_rewrap_job("i1", 2, 10.0)
            assert job.total == 4 and job.state == "running"
            assert await store.take_rewrap_lease("i1", "A", 10.0, 20.0)
            assert not await store.take_rewrap_lease("i1", "B", 11.0, 21.0)
            batch = await store.sealed_batch("i1", 0, 10)
            assert [r.uid for r in batch] == ["k0", "k1", "k2"]
            moved = [(r.uid, r.revision, b"\x01" + version_bytes(2) + b"new") for r in batch[:2]]
            assert await store.reseal_batch("i1", "B", moved, last_seq=0, skipped=0, now=12.0) is (
                None
            )  # B holds no lease: nothing written
            stale = [*moved, ("k2", batch[2].revision + 5, b"\x01" + version_bytes(2) + b"x")]
            lost = await store.reseal_batch(
                "i1", "A", stale, last_seq=batch[-1].seq, skipped=1, now=12.0
            )
            assert lost == ["k2"]
            assert await store.sealed_versions("i1") == {2: 3}
            assert await store.retire_wrapping_key("i1", 1)
            assert [k.version for k in await store.wrapping_keys("i1")] == [2]
            job = await store.rewrap_job("i1")
            assert job is not None and job.rewrapped == 2 and job.retries == 1

    run(test)


def test_events_are_seen_in_order_by_every_store(store_url: str, tmp_path: Path) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as node_a, Opened(store_url, tmp_path) as node_b:
            assert await node_b.last_event_seq() == 0
            first = await node_a.add_event("root_key", "rk1", 100.0)
            second = await node_a.add_event("trust", "", 200.0)
            assert second > first
            seen = await node_b.events_after(0)
            assert [(e.kind, e.subject) for e in seen] == [("root_key", "rk1"), ("trust", "")]
            assert await node_b.events_after(first) == seen[1:]
            assert await node_b.last_event_seq() == second
            assert await node_b.prune_events(150.0) == 1
            assert [e.seq for e in await node_a.events_after(0)] == [second]

    run(test)


def test_audit_filters_and_pages_newest_first(store_url: str, tmp_path: Path) -> None:
    async def test() -> None:
        async with Opened(store_url, tmp_path) as store:
            for n in range(6):
                await store.add_audit(
                    AuditRecord(
                        100 + n,
                        "fp" if n % 2 else "admin",
                        "kmip",
                        "Get",
                        "i",
                        f"u{n}",
                        "failure" if n == 3 else "success",
                    ),
                    TEST_CHAIN,
                )
            records, total = await store.audit_records(AuditQuery(limit=2, offset=1))
            assert total == 6 and [r.uid for r in records] == ["u4", "u3"]
            records, total = await store.audit_records(AuditQuery(actor="fp", since=102))
            assert total == 2 and [r.uid for r in records] == ["u5", "u3"]

    run(test)


# --- a database that goes away --------------------------------------------------------------


def test_an_unreachable_database_is_a_clean_error(store_url: str, tmp_path: Path) -> None:
    if store_url.startswith("sqlite"):
        unreachable = f"sqlite:///{tmp_path / 'no-such-dir' / 'x' / 'kmipd.db'}"
        (tmp_path / "no-such-dir").write_text("a file where a directory should be")
        expected: type[Exception] = OSError
    else:
        unreachable = "postgresql://postgres@127.0.0.1:1/kmipd"
        expected = StoreUnavailable

    async def test() -> None:
        with pytest.raises(expected):
            await make(unreachable, tmp_path).open()

    run(test)
