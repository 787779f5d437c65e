"""The SQLite object store: one file, WAL, ``synchronous=FULL``.

With ``synchronous=FULL`` a transaction is on disk when COMMIT returns, so an acknowledged
write survives kill -9 and power loss (``NORMAL`` in WAL mode may lose the last commits on
power loss). All access goes through one worker thread: SQLite serialises writers anyway,
and the event loop never waits on an fsync.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from kmipd.store.admin_queries import AdminQueries, migrate
from kmipd.store.records import (
    ApiKeyRecord,
    CertificateRecord,
    InstanceRecord,
    ObjectQuery,
    ObjectRecord,
    WrappingKeyRecord,
)
from kmipd.store.rewrap_queries import RewrapQueries, migrate_rewrap

T = TypeVar("T")

SCHEMA_VERSION = 1
SCHEMA = """
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

_OBJECT_COLUMNS = (
    "uid, instance, object_type, state, attributes, sealed, created, updated, algorithm, "
    "length, name, last_fetched, revision, last_fetched_by"
)


class StoreError(Exception):
    """The store failed or refused a write; the message is safe to log, never to a client."""


class SqliteStore(AdminQueries, RewrapQueries):
    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kmipd-sqlite")
        self._db: sqlite3.Connection | None = None

    @property
    def path(self) -> Path:
        return self._path

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        if db.execute("PRAGMA synchronous").fetchone()[0] != 2:
            raise StoreError("SQLite refused synchronous=FULL; acknowledged writes could be lost")
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            raise StoreError("SQLite refused WAL mode")
        db.executescript(SCHEMA)
        migrate(db)
        migrate_rewrap(db)
        row = db.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        elif row[0] > SCHEMA_VERSION:
            raise StoreError(
                f"the database schema is version {row[0]}, newer than this kmipd "
                f"understands ({SCHEMA_VERSION})"
            )
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        db = self._conn()
        try:
            with db:  # one transaction, committed (and fsynced) on exit
                db.execute("BEGIN IMMEDIATE")
                return db.execute(sql, params).rowcount
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"write refused: {exc}") from None

    # -- instances and certificates ------------------------------------------------------

    async def add_instance(self, record: InstanceRecord) -> None:
        await self._run(
            self._write,
            "INSERT INTO instances (name, root_key_id, created, provider) VALUES (?, ?, ?, ?)",
            (record.name, record.root_key_id, record.created, record.provider),
        )

    async def instances(self) -> list[InstanceRecord]:
        rows = await self._run(
            self._query,
            "SELECT name, root_key_id, created, provider, rotation_days, last_rotated "
            "FROM instances ORDER BY name",
            (),
        )
        return [InstanceRecord(*row) for row in rows]

    async def add_certificate(self, record: CertificateRecord) -> None:
        await self._run(
            self._write,
            "INSERT INTO certificates (fingerprint, instance, pem, subject, is_ca, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.fingerprint,
                record.instance,
                record.pem,
                record.subject,
                int(record.is_ca),
                record.created,
            ),
        )

    async def remove_certificate(self, fingerprint: str) -> bool:
        count = await self._run(
            self._write, "DELETE FROM certificates WHERE fingerprint = ?", (fingerprint,)
        )
        return count > 0

    async def certificates(self, instance: str | None = None) -> list[CertificateRecord]:
        sql = "SELECT fingerprint, instance, pem, subject, is_ca, created FROM certificates"
        params: tuple[Any, ...] = ()
        if instance is not None:
            sql += " WHERE instance = ?"
            params = (instance,)
        rows = await self._run(self._query, sql + " ORDER BY created, fingerprint", params)
        return [CertificateRecord(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]

    async def add_wrapping_key(self, record: WrappingKeyRecord) -> None:
        await self._run(
            self._write,
            "INSERT INTO wrapping_keys "
            "(instance, version, root_key_id, wrapped, created, provider) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.instance,
                record.version,
                record.root_key_id,
                record.wrapped,
                record.created,
                record.provider,
            ),
        )

    async def wrapping_keys(self, instance: str) -> list[WrappingKeyRecord]:
        rows = await self._run(
            self._query,
            "SELECT instance, version, root_key_id, wrapped, created, provider FROM wrapping_keys "
            "WHERE instance = ? ORDER BY version",
            (instance,),
        )
        return [WrappingKeyRecord(*row) for row in rows]

    # -- API keys ------------------------------------------------------------------------

    async def add_api_key(self, record: ApiKeyRecord) -> None:
        await self._run(
            self._write,
            "INSERT INTO api_keys (id, service_id, role, secret_hash, created, revoked, "
            "description) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.service_id,
                record.role,
                record.secret_hash,
                record.created,
                record.revoked,
                record.description,
            ),
        )

    async def api_key(
        self, *, key_id: str | None = None, secret_hash: str | None = None
    ) -> ApiKeyRecord | None:
        column, value = ("id", key_id) if key_id is not None else ("secret_hash", secret_hash)
        rows = await self._run(
            self._query,
            "SELECT id, service_id, role, secret_hash, created, revoked, description "
            f"FROM api_keys WHERE {column} = ?",
            (value,),
        )
        return ApiKeyRecord(*rows[0]) if rows else None

    async def api_keys(self) -> list[ApiKeyRecord]:
        rows = await self._run(
            self._query,
            "SELECT id, service_id, role, secret_hash, created, revoked, description "
            "FROM api_keys ORDER BY created, id",
            (),
        )
        return [ApiKeyRecord(*row) for row in rows]

    async def revoke_api_key(self, key_id: str, when: int) -> bool:
        count = await self._run(
            self._write,
            "UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
            (when, key_id),
        )
        return count > 0

    # -- objects -------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._conn().execute(sql, params).fetchall()

    async def insert_object(self, record: ObjectRecord) -> None:
        await self._run(
            self._write,
            f"INSERT INTO objects ({_OBJECT_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _object_params(record),
        )

    async def get_object(self, instance: str, uid: str) -> ObjectRecord | None:
        rows = await self._run(
            self._query,
            f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE uid = ? AND instance = ?",
            (uid, instance),
        )
        return ObjectRecord(*rows[0]) if rows else None

    async def update_object(self, record: ObjectRecord) -> bool:
        """Write ``record`` if the row is still at ``record.revision``; then bump it."""
        if await self._write_if_at(record, record.revision):
            record.revision += 1
            return True
        return False

    async def restore_object(self, record: ObjectRecord, expected_revision: int) -> bool:
        """Put ``record`` back as it was (Batch Undo), if the row is at ``expected_revision``."""
        return await self._write_if_at(record, expected_revision)

    async def _write_if_at(self, record: ObjectRecord, revision: int) -> bool:
        """Compare-and-swap: write every column of ``record`` if the row is at ``revision``,
        and bump the row's revision."""
        count = await self._run(
            self._write,
            "UPDATE objects SET object_type = ?, state = ?, attributes = ?, sealed = ?, "
            "updated = ?, algorithm = ?, length = ?, name = ?, last_fetched = ?, "
            "last_fetched_by = ?, revision = revision + 1 "
            "WHERE uid = ? AND instance = ? AND revision = ?",
            (
                record.object_type,
                record.state,
                record.attributes,
                record.sealed,
                record.updated,
                record.algorithm,
                record.length,
                record.name,
                record.last_fetched,
                record.last_fetched_by,
                record.uid,
                record.instance,
                revision,
            ),
        )
        return count > 0

    async def delete_object(self, instance: str, uid: str) -> bool:
        """Remove a row entirely (Batch Undo of a Create/Register); True if it was there."""
        count = await self._run(
            self._write, "DELETE FROM objects WHERE uid = ? AND instance = ?", (uid, instance)
        )
        return count > 0

    async def count_objects(self) -> dict[str, int]:
        """Managed objects per instance (every instance, zero included)."""
        rows = await self._run(
            self._query,
            "SELECT i.name, COUNT(o.uid) FROM instances i LEFT JOIN objects o "
            "ON o.instance = i.name GROUP BY i.name ORDER BY i.name",
            (),
        )
        return {name: count for name, count in rows}

    async def ping(self) -> None:
        """Raises when the database cannot answer."""
        await self._run(self._query, "SELECT 1", ())

    async def find_objects(self, query: ObjectQuery) -> list[ObjectRecord]:
        clauses = ["instance = ?"]
        params: list[Any] = [query.instance]
        for column, values in (
            ("object_type", query.object_types),
            ("state", query.states),
            ("uid", query.uids),
        ):
            if values is not None:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        for column, value in (
            ("algorithm", query.algorithm),
            ("length", query.length),
            ("name", query.name),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        rows = await self._run(
            self._query,
            f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE {' AND '.join(clauses)} ORDER BY seq",
            tuple(params),
        )
        return [ObjectRecord(*row) for row in rows]


def _object_params(r: ObjectRecord) -> tuple[Any, ...]:
    return (
        r.uid,
        r.instance,
        r.object_type,
        r.state,
        r.attributes,
        r.sealed,
        r.created,
        r.updated,
        r.algorithm,
        r.length,
        r.name,
        r.last_fetched,
        r.revision,
        r.last_fetched_by,
    )
