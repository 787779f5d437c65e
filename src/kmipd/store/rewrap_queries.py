"""What the re-wrap job asks of the store: its progress row, its lease, batches of sealed
bodies and their compare-and-swap rewrite, and which wrapping key versions are in use.

A mixin of :class:`kmipd.store.store.Store`.

A sealed body starts with ``format(1) | wrapping key version(4, big-endian)``
(:mod:`kmipd.keys.envelope`), so ``substr(sealed, 2, 4)`` is its version, readable in SQL
without opening it.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kmipd.store.database import POSTGRESQL, Connection

_JOB_COLUMNS = (
    "instance, target_version, state, last_seq, rewrapped, skipped, retries, total, passes, "
    "started, updated, finished, lease_owner, lease_until, error"
)

RUNNING, DONE = "running", "done"


def version_bytes(version: int) -> bytes:
    """A wrapping key version as it is in a sealed body (``substr(sealed, 2, 4)``)."""
    return struct.pack(">I", version)


@dataclass(frozen=True, slots=True)
class RewrapJob:
    """The persisted progress of one instance's re-wrap (no key material)."""

    instance: str
    target_version: int
    state: str  # running or done
    last_seq: int  # objects up to this seq are done in the current pass
    rewrapped: int  # bodies re-sealed under the target version
    skipped: int  # bodies already on the target version (or without material)
    retries: int  # compare-and-swap writes lost to a concurrent change, and redone
    total: int  # objects of the instance when the job (or its pass) started
    passes: int
    started: float
    updated: float
    finished: float | None
    lease_owner: str | None
    lease_until: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class SealedRow:
    seq: int
    uid: str
    revision: int
    sealed: bytes


class RewrapQueries:
    """Mixed into the store; relies on its ``_query`` and ``_tx``."""

    _query: Callable[..., Awaitable[list[tuple[Any, ...]]]]
    _transaction: Callable[..., Awaitable[list[int]]]
    _tx: Callable[..., Awaitable[Any]]
    _read_tx: Callable[..., Awaitable[Any]]
    dialect: str

    # -- wrapping key versions -----------------------------------------------------------

    async def set_root_key_version(self, instance: str, version: int, root_version: int) -> None:
        """Record under which root key version wrapping key ``version`` is wrapped."""
        await self._tx(
            lambda db: db.execute(
                "UPDATE wrapping_keys SET root_key_version = ? WHERE instance = ? AND version = ?",
                (root_version, instance, version),
            ),
        )

    async def root_key_versions(self, instance: str) -> dict[int, int | None]:
        """Wrapping key version -> the root key version that wraps it (None: not recorded)."""
        rows = await self._query(
            "SELECT version, root_key_version FROM wrapping_keys WHERE instance = ?",
            (instance,),
        )
        return {int(v): (int(r) if r is not None else None) for v, r in rows}

    async def sealed_versions(self, instance: str) -> dict[int, int]:
        """Wrapping key version -> how many of the instance's sealed bodies use it."""
        rows = await self._query(
            "SELECT substr(sealed, 2, 4), COUNT(*) FROM objects "
            "WHERE instance = ? AND sealed IS NOT NULL GROUP BY substr(sealed, 2, 4)",
            (instance,),
        )
        return {struct.unpack(">I", bytes(v))[0]: int(n) for v, n in rows if len(v) == 4}

    async def retire_wrapping_key(self, instance: str, version: int) -> bool:
        """Delete wrapping key ``version`` if no sealed body uses it (one statement, so no
        body can slip in between the check and the delete). True if it was deleted."""

        def retire(db: Connection) -> int:
            if self.dialect == POSTGRESQL:
                # Wait for writers of the instance's objects in flight and hold new ones back
                # until commit, so the NOT EXISTS below sees every body that uses ``version``.
                db.execute("LOCK TABLE objects IN SHARE ROW EXCLUSIVE MODE")
            return db.execute(
                "DELETE FROM wrapping_keys WHERE instance = ? AND version = ? AND NOT EXISTS "
                "(SELECT 1 FROM objects WHERE instance = ? AND sealed IS NOT NULL "
                "AND substr(sealed, 2, 4) = ?)",
                (instance, version, instance, version_bytes(version)),
            ).rowcount

        return bool(await self._tx(retire))

    # -- the job row and its lease -------------------------------------------------------

    async def rewrap_job(self, instance: str) -> RewrapJob | None:
        rows = await self._query(
            f"SELECT {_JOB_COLUMNS} FROM rewrap_jobs WHERE instance = ?", (instance,)
        )
        return RewrapJob(*rows[0]) if rows else None

    async def rewrap_jobs(self, state: str | None = None) -> list[RewrapJob]:
        sql = f"SELECT {_JOB_COLUMNS} FROM rewrap_jobs"
        params: tuple[Any, ...] = ()
        if state is not None:
            sql += " WHERE state = ?"
            params = (state,)
        rows = await self._query(sql + " ORDER BY instance", params)
        return [RewrapJob(*row) for row in rows]

    async def start_rewrap_job(self, instance: str, target: int, now: float) -> RewrapJob:
        """Make the instance's job aim at ``target`` (a new job from the start), unless it
        already does and is running; a finished job on ``target`` runs one more pass (it is
        idempotent: bodies already on ``target`` are skipped)."""

        def start(db: Connection) -> None:
            row = db.execute(
                "SELECT target_version, state FROM rewrap_jobs WHERE instance = ?", (instance,)
            ).fetchone()
            if row is not None and row[0] == target and row[1] == RUNNING:
                return
            if row is not None and row[0] > target:
                return  # a newer rotation already set a later target
            total = db.execute(
                "SELECT COUNT(*) FROM objects WHERE instance = ?", (instance,)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO rewrap_jobs (instance, target_version, state, total, started, "
                "updated) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (instance) DO UPDATE SET "
                "target_version = excluded.target_version, state = excluded.state, "
                "last_seq = 0, rewrapped = 0, skipped = 0, retries = 0, "
                "total = excluded.total, passes = 0, started = excluded.started, "
                "updated = excluded.updated, finished = NULL, error = NULL",
                (instance, target, RUNNING, total, now, now),
            )

        await self._tx(start)
        job = await self.rewrap_job(instance)
        assert job is not None
        return job

    async def take_rewrap_lease(self, instance: str, owner: str, now: float, until: float) -> bool:
        """Take or renew the job's lease: only one runner per instance, in any process."""

        def take(db: Connection) -> int:
            return db.execute(
                "UPDATE rewrap_jobs SET lease_owner = ?, lease_until = ? WHERE instance = ? "
                "AND state = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                (owner, until, instance, RUNNING, owner, now),
            ).rowcount

        return bool(await self._tx(take))

    async def release_rewrap_lease(self, instance: str, owner: str) -> None:
        await self._tx(
            lambda db: db.execute(
                "UPDATE rewrap_jobs SET lease_owner = NULL, lease_until = NULL "
                "WHERE instance = ? AND lease_owner = ?",
                (instance, owner),
            ),
        )

    async def update_rewrap_job(self, instance: str, owner: str, **changes: Any) -> bool:
        """Change the job's progress columns, if ``owner`` still holds its lease."""
        columns = ", ".join(f"{name} = ?" for name in changes)
        count = await self._tx(
            lambda db: (
                db.execute(
                    f"UPDATE rewrap_jobs SET {columns} WHERE instance = ? AND lease_owner = ?",
                    (*changes.values(), instance, owner),
                ).rowcount
            ),
        )
        return bool(count)

    async def delete_rewrap_job(self, instance: str) -> None:
        await self._tx(
            lambda db: db.execute("DELETE FROM rewrap_jobs WHERE instance = ?", (instance,)),
        )

    # -- batches of sealed bodies --------------------------------------------------------

    async def sealed_batch(self, instance: str, after_seq: int, limit: int) -> list[SealedRow]:
        """The next ``limit`` objects with a sealed body, in seq order, after ``after_seq``."""
        rows = await self._query(
            "SELECT seq, uid, revision, sealed FROM objects WHERE instance = ? AND seq > ? "
            "AND sealed IS NOT NULL ORDER BY seq LIMIT ?",
            (instance, after_seq, limit),
        )
        return [SealedRow(int(s), u, int(r), bytes(b)) for s, u, r, b in rows]

    async def sealed_rows(self, instance: str, uids: list[str]) -> list[SealedRow]:
        marks = ", ".join("?" * len(uids))
        rows = await self._query(
            f"SELECT seq, uid, revision, sealed FROM objects WHERE instance = ? "
            f"AND uid IN ({marks}) AND sealed IS NOT NULL ORDER BY seq",
            (instance, *uids),
        )
        return [SealedRow(int(s), u, int(r), bytes(b)) for s, u, r, b in rows]

    async def reseal_batch(
        self,
        instance: str,
        owner: str,
        writes: list[tuple[str, int, bytes]],
        *,
        last_seq: int | None,
        skipped: int,
        now: float,
        lease_until: float | None = None,
    ) -> list[str] | None:
        """Write each ``(uid, revision, sealed)`` if the row is still at ``revision``
        (compare-and-swap; the revision is bumped, so a KMIP writer that read the row before
        retries), and the job's progress (``last_seq`` when given, counts, lease), in one
        transaction. The UIDs whose write lost to a concurrent change; None (nothing
        written) if ``owner`` does not hold the job's lease."""

        def write(db: Connection) -> list[str] | None:
            # An UPDATE, not a SELECT: it locks the job row until commit (PostgreSQL), so the
            # lease cannot pass to another node between this check and the writes.
            held = db.execute(
                "UPDATE rewrap_jobs SET updated = ? WHERE instance = ? AND lease_owner = ?",
                (now, instance, owner),
            ).rowcount
            if not held:
                return None
            lost = []
            for uid, revision, sealed in writes:
                count = db.execute(
                    "UPDATE objects SET sealed = ?, revision = revision + 1 "
                    "WHERE uid = ? AND instance = ? AND revision = ? AND sealed IS NOT NULL",
                    (sealed, uid, instance, revision),
                ).rowcount
                if not count:
                    lost.append(uid)
            db.execute(
                "UPDATE rewrap_jobs SET last_seq = COALESCE(?, last_seq), "
                "rewrapped = rewrapped + ?, skipped = skipped + ?, retries = retries + ?, "
                "updated = ?, lease_until = COALESCE(?, lease_until) WHERE instance = ?",
                (
                    last_seq,
                    len(writes) - len(lost),
                    skipped,
                    len(lost),
                    now,
                    lease_until,
                    instance,
                ),
            )
            return lost

        result: list[str] | None = await self._tx(write)
        return result
