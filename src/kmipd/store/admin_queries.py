"""What the management API asks of the store: instance deletion and rotation schedule,
certificate "last seen", the key inventory, the audit trail and named leases (one runner of a
background task across processes and nodes).

A mixin of :class:`kmipd.store.store.Store`, kept apart so the store's core stays small.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from kmipd.store.database import POSTGRESQL, Connection
from kmipd.store.records import AuditQuery, AuditRecord, CertificateRecord, InventoryRow

T = TypeVar("T")

_AUDIT_COLUMNS = "seq, time, actor, channel, action, instance, uid, result, reason"
_CERTIFICATE_COLUMNS = "fingerprint, instance, pem, subject, is_ca, created, last_seen"
_INVENTORY_COLUMNS = (
    "uid, object_type, state, algorithm, length, attributes, created, updated, "
    "last_fetched, last_fetched_by, sealed IS NOT NULL"
)


AUDIT_GENESIS = "0" * 64  # the "previous hash" of the first chained record


class AuditLinker(Protocol):
    """Computes the audit chain's keyed hashes (``kmipd.audit.chain.AuditChain``)."""

    def link(self, previous: str, record: AuditRecord) -> str: ...

    def seal_head(self, last_hash: str, records: int) -> str: ...


def _certificate(row: tuple[Any, ...]) -> CertificateRecord:
    return CertificateRecord(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])


class AdminQueries:
    """Mixed into the store; relies on its ``_query``, ``_transaction`` and ``_tx``."""

    _query: Callable[..., Awaitable[list[tuple[Any, ...]]]]
    _transaction: Callable[..., Awaitable[list[int]]]
    _tx: Callable[..., Awaitable[Any]]
    _read_tx: Callable[..., Awaitable[Any]]
    dialect: str

    # -- instances -----------------------------------------------------------------------

    async def delete_instance(self, name: str) -> bool:
        """Remove an instance with its objects, certificates and wrapping keys, in one
        transaction. True if it was there."""
        counts = await self._transaction(
            [
                ("DELETE FROM objects WHERE instance = ?", (name,)),
                ("DELETE FROM certificates WHERE instance = ?", (name,)),
                ("DELETE FROM rewrap_jobs WHERE instance = ?", (name,)),
                ("DELETE FROM wrapping_keys WHERE instance = ?", (name,)),
                ("DELETE FROM instances WHERE name = ?", (name,)),
            ],
        )
        return bool(counts[-1])

    async def set_rotation_days(self, name: str, days: float | None) -> bool:
        """Set (or, with None, turn off) the instance's rotation schedule. True if it exists."""
        counts = await self._transaction(
            [("UPDATE instances SET rotation_days = ? WHERE name = ?", (days, name))],
        )
        return bool(counts[0])

    async def set_last_rotated(self, name: str, when: float) -> None:
        await self._transaction(
            [("UPDATE instances SET last_rotated = ? WHERE name = ?", (when, name))],
        )

    # -- leases --------------------------------------------------------------------------

    async def take_lease(self, name: str, owner: str, now: float, until: float) -> bool:
        """Take or renew the lease ``name`` until ``until``: refused while another owner
        holds it unexpired. One statement, so two processes never both get it."""
        counts = await self._transaction(
            [
                (
                    "INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                    "until = excluded.until WHERE leases.owner = excluded.owner "
                    "OR leases.until < ?",
                    (name, owner, until, now),
                )
            ],
        )
        return bool(counts[0])

    async def release_lease(self, name: str, owner: str) -> None:
        await self._transaction(
            [("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))],
        )

    async def object_counts(self, instance: str) -> dict[int, int]:
        """How many objects ``instance`` has, per state."""
        rows = await self._query(
            "SELECT state, COUNT(*) FROM objects WHERE instance = ? GROUP BY state",
            (instance,),
        )
        return {int(state): int(count) for state, count in rows}

    # -- certificates --------------------------------------------------------------------

    async def certificate_details(
        self, instance: str | None = None, fingerprint: str | None = None
    ) -> list[CertificateRecord]:
        """Certificates with their ``last_seen``; of one instance and/or one fingerprint."""
        clauses, params = [], []
        if instance is not None:
            clauses.append("instance = ?")
            params.append(instance)
        if fingerprint is not None:
            clauses.append("fingerprint = ?")
            params.append(fingerprint)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._query(
            f"SELECT {_CERTIFICATE_COLUMNS} FROM certificates{where} ORDER BY created, fingerprint",
            tuple(params),
        )
        return [_certificate(row) for row in rows]

    async def certificate_seen(self, fingerprint: str, when: int) -> None:
        await self._transaction(
            [("UPDATE certificates SET last_seen = ? WHERE fingerprint = ?", (when, fingerprint))],
        )

    # -- key inventory -------------------------------------------------------------------

    async def inventory(
        self,
        instance: str,
        *,
        object_types: tuple[int, ...] | None = None,
        states: tuple[int, ...] | None = None,
        uid: str | None = None,
    ) -> list[InventoryRow]:
        """The objects of ``instance`` in creation order, without their sealed bodies."""
        clauses, params = ["instance = ?"], [instance]
        for column, values in (("object_type", object_types), ("state", states)):
            if values is not None:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if uid is not None:
            clauses.append("uid = ?")
            params.append(uid)
        rows = await self._query(
            f"SELECT {_INVENTORY_COLUMNS} FROM objects WHERE {' AND '.join(clauses)} ORDER BY seq",
            tuple(params),
        )
        return [InventoryRow(*row[:10], has_material=bool(row[10])) for row in rows]

    # -- audit ---------------------------------------------------------------------------

    async def append_audit(
        self, records: list[AuditRecord], chain: AuditLinker, *, durable: bool = True
    ) -> None:
        """Append ``records`` to the chained trail, in order, in one transaction (one commit
        for all of them: the audit trail's group commit). The chain's head row is locked for
        the transaction, so the nodes of a cluster append one after the other.
        ``durable``: see :meth:`Database.write`."""
        lock = " FOR UPDATE" if self.dialect == POSTGRESQL else ""

        def append(db: Connection) -> None:
            db.execute(
                "INSERT INTO audit_chain (id, last_hash, records, mac) VALUES (1, ?, 0, NULL) "
                "ON CONFLICT (id) DO NOTHING",
                (AUDIT_GENESIS,),
            )
            last, count = db.execute(
                f"SELECT last_hash, records FROM audit_chain WHERE id = 1{lock}"
            ).fetchone()
            for record in records:
                link = chain.link(last, record)
                db.execute(
                    "INSERT INTO audit (time, actor, channel, action, instance, uid, result, "
                    "reason, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*record.values(), last, link),
                )
                last = link
            count = int(count) + len(records)
            db.execute(
                "UPDATE audit_chain SET last_hash = ?, records = ?, mac = ? WHERE id = 1",
                (last, count, chain.seal_head(last, count)),
            )

        await self._tx(append, durable=durable)

    async def add_audit(self, record: AuditRecord, chain: AuditLinker) -> None:
        await self.append_audit([record], chain)

    async def audit_chain_page(
        self, after_seq: int, limit: int
    ) -> list[tuple[int, AuditRecord, str | None, str | None]]:
        """Records in trail order after ``after_seq``: (seq, record, previous hash, hash)."""
        rows = await self._query(
            f"SELECT {_AUDIT_COLUMNS}, prev_hash, hash FROM audit WHERE seq > ? "
            "ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [(int(r[0]), AuditRecord(*r[1:9], seq=int(r[0])), r[9], r[10]) for r in rows]

    async def audit_chain_head(self) -> tuple[str, int, str | None] | None:
        """(last hash, chained records, the head's MAC), or None before the first record."""
        rows = await self._query("SELECT last_hash, records, mac FROM audit_chain WHERE id = 1")
        return (rows[0][0], int(rows[0][1]), rows[0][2]) if rows else None

    async def audit_records(self, query: AuditQuery) -> tuple[list[AuditRecord], int]:
        """One page of matching audit records, newest first, and how many match in all."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("actor", query.actor),
            ("action", query.action),
            ("instance", query.instance),
            ("uid", query.uid),
            ("result", query.result),
            ("channel", query.channel),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            clauses.append("time >= ?")
            params.append(query.since)
        if query.until is not None:
            clauses.append("time <= ?")
            params.append(query.until)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""

        def page(db: Connection, db_params: tuple[Any, ...]) -> tuple[list[tuple[Any, ...]], int]:
            total = db.execute(f"SELECT COUNT(*) FROM audit{where}", db_params).fetchone()[0]
            rows = db.execute(
                f"SELECT {_AUDIT_COLUMNS} FROM audit{where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                (*db_params, query.limit, query.offset),
            ).fetchall()
            return rows, int(total)

        rows, total = await self._read_tx(lambda db: page(db, tuple(params)))
        return [AuditRecord(*row[1:], seq=row[0]) for row in rows], total
