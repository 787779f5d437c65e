"""What the re-wrap job asks of the SQLite store: its progress row, its lease, batches of
sealed bodies and their compare-and-swap rewrite, and which wrapping key versions are in use.

A mixin of :class:`kmipd.store.sqlite.SqliteStore` (its worker thread and connection). The
``rewrap_jobs`` table and the ``root_key_version`` column of ``wrapping_keys`` are created by
:func:`migrate_rewrap`, run when the store opens a database, old ones included.

A sealed body starts with ``format(1) | wrapping key version(4, big-endian)``
(:mod:`kmipd.keys.envelope`), so ``substr(sealed, 2, 4)`` is its version, readable in SQL
without opening it.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REWRAP_SCHEMA = """
CREATE TABLE IF NOT EXISTS rewrap_jobs (
    instance TEXT PRIMARY KEY,
    target_version INTEGER NOT NULL,
    state TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    rewrapped INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    passes INTEGER NOT NULL DEFAULT 0,
    started REAL NOT NULL,
    updated REAL NOT NULL,
    finished REAL,
    lease_owner TEXT,
    lease_until REAL,
    error TEXT
);
"""

_JOB_COLUMNS = (
    "instance, target_version, state, last_seq, rewrapped, skipped, retries, total, passes, "
    "started, updated, finished, lease_owner, lease_until, error"
)

RUNNING, DONE = "running", "done"


def migrate_rewrap(db: sqlite3.Connection) -> None:
    """Add the re-wrap job's table and column to a database (idempotent)."""
    db.executescript(REWRAP_SCHEMA)
    present = {row[1] for row in db.execute("PRAGMA table_info(wrapping_keys)")}
    if "root_key_version" not in present:
        db.execute("ALTER TABLE wrapping_keys ADD COLUMN root_key_version INTEGER")


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
    """Mixed into the store; relies on its ``_run``, ``_query`` and ``_conn``."""

    _run: Callable[..., Any]
    _query: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
    _conn: Callable[[], sqlite3.Connection]

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        db = self._conn()
        with db:  # one transaction, committed (and fsynced) on exit
            db.execute("BEGIN IMMEDIATE")
            return fn(db)

    # -- wrapping key versions -----------------------------------------------------------

    async def set_root_key_version(self, instance: str, version: int, root_version: int) -> None:
        """Record under which root key version wrapping key ``version`` is wrapped."""
        await self._run(
            self._tx,
            lambda db: db.execute(
                "UPDATE wrapping_keys SET root_key_version = ? WHERE instance = ? AND version = ?",
                (root_version, instance, version),
            ),
        )

    async def root_key_versions(self, instance: str) -> dict[int, int | None]:
        """Wrapping key version -> the root key version that wraps it (None: not recorded)."""
        rows = await self._run(
            self._query,
            "SELECT version, root_key_version FROM wrapping_keys WHERE instance = ?",
            (instance,),
        )
        return {int(v): (int(r) if r is not None else None) for v, r in rows}

    async def sealed_versions(self, instance: str) -> dict[int, int]:
        """Wrapping key version -> how many of the instance's sealed bodies use it."""
        rows = await self._run(
            self._query,
            "SELECT substr(sealed, 2, 4), COUNT(*) FROM objects "
            "WHERE instance = ? AND sealed IS NOT NULL GROUP BY substr(sealed, 2, 4)",
            (instance,),
        )
        return {struct.unpack(">I", bytes(v))[0]: int(n) for v, n in rows if len(v) == 4}

    async def retire_wrapping_key(self, instance: str, version: int) -> bool:
        """Delete wrapping key ``version`` if no sealed body uses it (one statement, so no
        body can slip in between the check and the delete). True if it was deleted."""

        def retire(db: sqlite3.Connection) -> int:
            return db.execute(
                "DELETE FROM wrapping_keys WHERE instance = ? AND version = ? AND NOT EXISTS "
                "(SELECT 1 FROM objects WHERE instance = ? AND sealed IS NOT NULL "
                "AND substr(sealed, 2, 4) = ?)",
                (instance, version, instance, version_bytes(version)),
            ).rowcount

        return bool(await self._run(self._tx, retire))

    # -- the job row and its lease -------------------------------------------------------

    async def rewrap_job(self, instance: str) -> RewrapJob | None:
        rows = await self._run(
            self._query, f"SELECT {_JOB_COLUMNS} FROM rewrap_jobs WHERE instance = ?", (instance,)
        )
        return RewrapJob(*rows[0]) if rows else None

    async def rewrap_jobs(self, state: str | None = None) -> list[RewrapJob]:
        sql = f"SELECT {_JOB_COLUMNS} FROM rewrap_jobs"
        params: tuple[Any, ...] = ()
        if state is not None:
            sql += " WHERE state = ?"
            params = (state,)
        rows = await self._run(self._query, sql + " ORDER BY instance", params)
        return [RewrapJob(*row) for row in rows]

    async def start_rewrap_job(self, instance: str, target: int, now: float) -> RewrapJob:
        """Make the instance's job aim at ``target`` (a new job from the start), unless it
        already does and is running; a finished job on ``target`` runs one more pass (it is
        idempotent: bodies already on ``target`` are skipped)."""

        def start(db: sqlite3.Connection) -> None:
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

        await self._run(self._tx, start)
        job = await self.rewrap_job(instance)
        assert job is not None
        return job

    async def take_rewrap_lease(self, instance: str, owner: str, now: float, until: float) -> bool:
        """Take or renew the job's lease: only one runner per instance, in any process."""

        def take(db: sqlite3.Connection) -> int:
            return db.execute(
                "UPDATE rewrap_jobs SET lease_owner = ?, lease_until = ? WHERE instance = ? "
                "AND state = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                (owner, until, instance, RUNNING, owner, now),
            ).rowcount

        return bool(await self._run(self._tx, take))

    async def release_rewrap_lease(self, instance: str, owner: str) -> None:
        await self._run(
            self._tx,
            lambda db: db.execute(
                "UPDATE rewrap_jobs SET lease_owner = NULL, lease_until = NULL "
                "WHERE instance = ? AND lease_owner = ?",
                (instance, owner),
            ),
        )

    async def update_rewrap_job(self, instance: str, owner: str, **changes: Any) -> bool:
        """Change the job's progress columns, if ``owner`` still holds its lease."""
        columns = ", ".join(f"{name} = ?" for name in changes)
        count = await self._run(
            self._tx,
            lambda db: (
                db.execute(
                    f"UPDATE rewrap_jobs SET {columns} WHERE instance = ? AND lease_owner = ?",
                    (*changes.values(), instance, owner),
                ).rowcount
            ),
        )
        return bool(count)

    async def delete_rewrap_job(self, instance: str) -> None:
        await self._run(
            self._tx,
            lambda db: db.execute("DELETE FROM rewrap_jobs WHERE instance = ?", (instance,)),
        )

    # -- batches of sealed bodies --------------------------------------------------------

    async def sealed_batch(self, instance: str, after_seq: int, limit: int) -> list[SealedRow]:
        """The next ``limit`` objects with a sealed body, in seq order, after ``after_seq``."""
        rows = await self._run(
            self._query,
            "SELECT seq, uid, revision, sealed FROM objects WHERE instance = ? AND seq > ? "
            "AND sealed IS NOT NULL ORDER BY seq LIMIT ?",
            (instance, after_seq, limit),
        )
        return [SealedRow(int(s), u, int(r), bytes(b)) for s, u, r, b in rows]

    async def sealed_rows(self, instance: str, uids: list[str]) -> list[SealedRow]:
        marks = ", ".join("?" * len(uids))
        rows = await self._run(
            self._query,
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

        def write(db: sqlite3.Connection) -> list[str] | None:
            held = db.execute(
                "SELECT 1 FROM rewrap_jobs WHERE instance = ? AND lease_owner = ?",
                (instance, owner),
            ).fetchone()
            if held is None:
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

        result: list[str] | None = await self._run(self._tx, write)
        return result
