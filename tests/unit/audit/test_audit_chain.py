"""The audit trail, on both store engines: records are written durably in group commits,
chained with a keyed hash, and ``verify`` finds a record modified, removed, moved, cut off
the end or a head forged; when the trail cannot be written, writing fails (and the caller
refuses the request)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kmipd.audit.chain import AuditChain, verify
from kmipd.audit.log import AuditLog, AuditUnavailable
from kmipd.protocol import messages
from kmipd.protocol._generated import Operation, ResultStatus
from kmipd.service.identity import ClientIdentity
from kmipd.store.records import AuditRecord
from kmipd.store.store import Store

KEY = b"\x07" * 32


class CountingStore(Store):
    """Counts the transactions that append audit records (one per group commit), and
    remembers whether each had to be on disk before it returned."""

    appends = 0
    durability: list[bool]

    async def append_audit(
        self, records: list[AuditRecord], chain: object, *, durable: bool = True
    ) -> None:
        self.appends += 1
        self.durability = [*getattr(self, "durability", []), durable]
        await super().append_audit(records, chain, durable=durable)  # type: ignore[arg-type]


def run(
    store_url: str, tmp_path: Path, scenario: Callable[[Store, AuditLog], Awaitable[None]]
) -> None:
    async def main() -> None:
        store = Store.from_url(store_url, base=tmp_path)
        await store.open()
        audit = AuditLog(store, AuditChain(KEY))
        try:
            await scenario(store, audit)
        finally:
            await audit.close()
            await store.close()

    asyncio.run(main())


async def write_some(audit: AuditLog, n: int) -> None:
    for i in range(n):
        await audit.record(actor=f"actor-{i}", channel="kmip", action="Get", uid=f"u{i}")


def test_concurrent_records_share_commits_and_chain(store_url: str, tmp_path: Path) -> None:
    async def main() -> None:
        base = Store.from_url(store_url, base=tmp_path)
        store = CountingStore(base.database)
        await store.open()
        audit = AuditLog(store, AuditChain(KEY))
        try:
            await asyncio.gather(
                *(audit.record(actor=f"c{i}", channel="kmip", action="Get") for i in range(200))
            )
            result = await verify(store, AuditChain(KEY))
            assert result.ok and result.checked == 200, result
            print(f"200 concurrent records in {store.appends} commits")
            assert store.appends < 200  # group commit: fewer commits than records
        finally:
            await audit.close()
            await store.close()

    asyncio.run(main())


def test_an_intact_trail_verifies_and_a_wrong_key_does_not(store_url: str, tmp_path: Path) -> None:
    async def scenario(store: Store, audit: AuditLog) -> None:
        assert (await verify(store, AuditChain(KEY))).ok  # empty
        await write_some(audit, 5)
        result = await verify(store, AuditChain(KEY))
        assert result.ok and result.checked == 5 and result.unchained == 0
        assert not (await verify(store, AuditChain(b"\x08" * 32))).ok

    run(store_url, tmp_path, scenario)


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("UPDATE audit SET actor = 'someone else' WHERE seq = 3", "record 3 was modified"),
        (
            "UPDATE audit SET result = 'success' WHERE seq = 1",
            "record 1 was modified",
        ),
        ("DELETE FROM audit WHERE seq = 3", "record 4 does not follow"),
        ("DELETE FROM audit WHERE seq = 5", "removed from the end"),
        ("UPDATE audit_chain SET records = 4", "head was modified"),
        ("UPDATE audit_chain SET last_hash = '00', records = 0, mac = NULL", "head was reset"),
    ],
)
def test_tampering_is_found(store_url: str, tmp_path: Path, tamper: str, problem: str) -> None:
    async def scenario(store: Store, audit: AuditLog) -> None:
        await audit.record(actor="a", channel="kmip", action="Create", result="failure")
        await write_some(audit, 4)
        await store._write(tamper.replace("'00'", "'" + "0" * 64 + "'"))
        result = await verify(store, AuditChain(KEY))
        assert not result.ok and problem in (result.problem or ""), result

    run(store_url, tmp_path, scenario)


def test_reordered_records_are_found(store_url: str, tmp_path: Path) -> None:
    """Two records swap places (their contents and hashes swapped between the rows)."""

    async def scenario(store: Store, audit: AuditLog) -> None:
        await write_some(audit, 4)
        rows = await store._query(
            "SELECT seq, actor, uid, prev_hash, hash FROM audit WHERE seq IN (2, 3) ORDER BY seq"
        )
        (s2, a2, u2, p2, h2), (s3, a3, u3, p3, h3) = rows
        for seq, actor, uid, prev, link in ((s2, a3, u3, p3, h3), (s3, a2, u2, p2, h2)):
            await store._write(
                "UPDATE audit SET actor = ?, uid = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (actor, uid, prev, link, seq),
            )
        result = await verify(store, AuditChain(KEY))
        assert not result.ok and "record 2 does not follow" in (result.problem or ""), result

    run(store_url, tmp_path, scenario)


def test_records_from_before_the_chain_are_counted_not_checked(
    store_url: str, tmp_path: Path
) -> None:
    async def scenario(store: Store, audit: AuditLog) -> None:
        await store._write(
            "INSERT INTO audit (time, actor, channel, action, result) "
            "VALUES (1, 'old', 'https', 'x', 'success')"
        )
        await write_some(audit, 2)
        result = await verify(store, AuditChain(KEY))
        assert result.ok and result.checked == 2 and result.unchained == 1, result

    run(store_url, tmp_path, scenario)


def test_a_broken_trail_makes_writing_fail(store_url: str, tmp_path: Path) -> None:
    async def scenario(store: Store, audit: AuditLog) -> None:
        await write_some(audit, 1)
        await store._write("DROP TABLE audit")
        with pytest.raises(AuditUnavailable):
            await audit.record(actor="a", channel="kmip", action="Get")
        results = await asyncio.gather(
            *(audit.record(actor="b", channel="kmip", action="Get") for _ in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(r, AuditUnavailable) for r in results)

    run(store_url, tmp_path, scenario)


@pytest.mark.parametrize("sync_reads", [False, True])
def test_records_of_reads_may_reach_the_disk_later_records_of_changes_never(
    tmp_path: Path, sync_reads: bool
) -> None:
    client = ClientIdentity("default", "fingerprint", "CN=client")

    def batch(*operations: Operation) -> tuple[list[Any], list[Any]]:
        requests = [messages.RequestBatchItem(operation=op) for op in operations]
        responses = [
            messages.ResponseBatchItem(operation=op, result_status=ResultStatus.SUCCESS)
            for op in operations
        ]
        return requests, responses

    async def main() -> None:
        base = Store.sqlite(tmp_path / "kmipd.db")
        store = CountingStore(base.database)
        await store.open()
        audit = AuditLog(store, AuditChain(KEY), sync_reads=sync_reads)
        try:
            for operations in (
                (Operation.GET,),
                (Operation.LOCATE, Operation.GET_ATTRIBUTES),
                (Operation.CREATE,),
                (Operation.LOCATE, Operation.DESTROY),
            ):
                await audit.kmip_batch(client, *batch(*operations))
            reads = not sync_reads
            assert store.durability == [not reads, not reads, True, True]
            assert (await verify(store, AuditChain(KEY))).checked == 6
        finally:
            await audit.close()
            await store.close()

    asyncio.run(main())
