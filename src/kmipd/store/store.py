"""The object store: managed objects, instances, certificates, wrapping keys, API keys, the
audit trail and the background jobs' state, on a :class:`~kmipd.store.database.Database`
(SQLite for one node, PostgreSQL for a cluster). The SQL is written once, for both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from kmipd.store import migrations
from kmipd.store.admin_queries import AdminQueries
from kmipd.store.database import Connection, Database, StoreError, StoreUnavailable
from kmipd.store.events import EventQueries
from kmipd.store.node_queries import NodeQueries
from kmipd.store.postgres_database import PostgresDatabase, is_postgres_url, redact
from kmipd.store.records import (
    ApiKeyRecord,
    CertificateRecord,
    InstanceRecord,
    ObjectQuery,
    ObjectRecord,
    WrappingKeyRecord,
)
from kmipd.store.rewrap_queries import RewrapQueries
from kmipd.store.sqlite_database import SqliteDatabase

__all__ = ["Store", "StoreError", "StoreUnavailable"]

T = TypeVar("T")

_OBJECT_COLUMNS = (
    "uid, instance, object_type, state, attributes, sealed, created, updated, algorithm, "
    "length, name, last_fetched, revision, last_fetched_by"
)
_OBJECT_COLUMNS_OF_O = ", ".join(f"o.{column.strip()}" for column in _OBJECT_COLUMNS.split(","))


class Store(AdminQueries, RewrapQueries, EventQueries, NodeQueries):
    def __init__(self, database: Database) -> None:
        self._db = database
        self.schema_version: int | None = None

    @classmethod
    def sqlite(cls, path: Path) -> Store:
        return cls(SqliteDatabase(path))

    @classmethod
    def postgres(cls, url: str, *, pool_size: int = 8) -> Store:
        return cls(PostgresDatabase(url, pool_size=pool_size))

    @classmethod
    def from_url(cls, url: str, *, base: Path, pool_size: int = 8) -> Store:
        """``sqlite:///PATH`` (relative to ``base``) or ``postgresql://…``."""
        if is_postgres_url(url):
            return cls.postgres(url, pool_size=pool_size)
        prefix = "sqlite:///"
        if not url.startswith(prefix):
            raise StoreError(
                f"store.url {redact(url)!r} is not supported; use sqlite:///PATH or "
                "postgresql://USER@HOST:PORT/DATABASE"
            )
        path = Path(url[len(prefix) :])
        return cls.sqlite(path if path.is_absolute() else base / path)

    @property
    def database(self) -> Database:
        return self._db

    @property
    def dialect(self) -> str:
        return self._db.dialect

    def describe(self) -> str:
        return self._db.describe()

    async def open(self, *, migrate: bool = False) -> list[int]:
        """Connect, and check the schema: a new database gets the whole schema; one that is
        behind is migrated only when ``migrate`` is true (``kmipd migrate``), else refused.
        The migration versions applied."""
        await self._db.open()
        try:
            return await self._db.write(self._check_schema, migrate)
        except BaseException:
            await self._db.close()
            raise

    def _check_schema(self, conn: Connection, migrate: bool) -> list[int]:
        version = migrations.current_version(conn, self.dialect)
        if version is not None and version > migrations.LATEST:
            raise migrations.SchemaMismatch(migrations.too_new(version))
        if version is not None and version < migrations.LATEST and not migrate:
            raise migrations.SchemaMismatch(migrations.behind(version, self.describe()))
        applied = migrations.migrate(conn, self.dialect)
        self.schema_version = migrations.LATEST
        return applied

    async def close(self) -> None:
        await self._db.close()

    # -- statements shared by the query mixins --------------------------------------------

    async def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await self._db.read(_fetchall, sql, params)

    async def _lookup(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read of a few rows by key (see :meth:`Database.lookup`)."""
        return await self._db.lookup(_fetchall, sql, params)

    async def _write(
        self, sql: str, params: tuple[Any, ...] = (), *, durable: bool = True
    ) -> int:
        return await self._db.write(_rowcount, sql, params, durable=durable)

    async def _transaction(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
        return await self._db.write(_rowcounts, statements)

    async def _tx(self, fn: Callable[[Connection], T], *, durable: bool = True) -> T:
        """``fn(connection)`` in one write transaction (``durable``: see Database.write)."""
        return await self._db.write(fn, durable=durable)

    async def _read_tx(self, fn: Callable[[Connection], T]) -> T:
        return await self._db.read(fn)

    # -- instances and certificates ------------------------------------------------------

    async def add_instance(self, record: InstanceRecord) -> None:
        await self._write(
            "INSERT INTO instances (name, root_key_id, created, provider) VALUES (?, ?, ?, ?)",
            (record.name, record.root_key_id, record.created, record.provider),
        )

    async def instances(self) -> list[InstanceRecord]:
        rows = await self._lookup(
            "SELECT name, root_key_id, created, provider, rotation_days, last_rotated "
            "FROM instances ORDER BY name",
            (),
        )
        return [InstanceRecord(*row) for row in rows]

    async def add_certificate(self, record: CertificateRecord) -> None:
        await self._write(
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
        count = await self._write("DELETE FROM certificates WHERE fingerprint = ?", (fingerprint,))
        return count > 0

    async def certificates(self, instance: str | None = None) -> list[CertificateRecord]:
        sql = "SELECT fingerprint, instance, pem, subject, is_ca, created FROM certificates"
        params: tuple[Any, ...] = ()
        if instance is not None:
            sql += " WHERE instance = ?"
            params = (instance,)
        rows = await self._query(sql + " ORDER BY created, fingerprint", params)
        return [CertificateRecord(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]

    async def add_wrapping_key(self, record: WrappingKeyRecord) -> None:
        await self._write(
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
        rows = await self._lookup(
            "SELECT instance, version, root_key_id, wrapped, created, provider FROM wrapping_keys "
            "WHERE instance = ? ORDER BY version",
            (instance,),
        )
        return [WrappingKeyRecord(*row) for row in rows]

    # -- API keys ------------------------------------------------------------------------

    async def add_api_key(self, record: ApiKeyRecord) -> None:
        await self._write(
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
        rows = await self._query(
            "SELECT id, service_id, role, secret_hash, created, revoked, description "
            f"FROM api_keys WHERE {column} = ?",
            (value,),
        )
        return ApiKeyRecord(*rows[0]) if rows else None

    async def api_keys(self) -> list[ApiKeyRecord]:
        rows = await self._query(
            "SELECT id, service_id, role, secret_hash, created, revoked, description "
            "FROM api_keys ORDER BY created, id",
            (),
        )
        return [ApiKeyRecord(*row) for row in rows]

    async def revoke_api_key(self, key_id: str, when: int) -> bool:
        count = await self._write(
            "UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
            (when, key_id),
        )
        return count > 0

    # -- objects -------------------------------------------------------------------------

    async def insert_object(
        self, record: ObjectRecord, *, texts: Iterable[str] = (), durable: bool = True
    ) -> None:
        """A new object, and its searchable ``texts`` (kmipd.model.searchable)."""
        texts = tuple(texts)

        def insert(db: Connection) -> None:
            db.execute(
                f"INSERT INTO objects ({_OBJECT_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _object_params(record),
            )
            _put_texts(db, record, texts)

        await self._tx(insert, durable=durable)

    async def get_object(self, instance: str, uid: str) -> ObjectRecord | None:
        rows = await self._lookup(
            f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE uid = ? AND instance = ?",
            (uid, instance),
        )
        return ObjectRecord(*rows[0]) if rows else None

    async def update_object(
        self,
        record: ObjectRecord,
        *,
        texts: Iterable[str] | None = None,
        durable: bool = True,
    ) -> bool:
        """Write ``record`` if the row is still at ``record.revision``; then bump it.
        ``texts``: its searchable texts, when they changed."""
        if await self._write_if_at(record, record.revision, texts=texts, durable=durable):
            record.revision += 1
            return True
        return False

    async def restore_object(
        self, record: ObjectRecord, expected_revision: int, *, texts: Iterable[str] = ()
    ) -> bool:
        """Put ``record`` back as it was (Batch Undo), if the row is at ``expected_revision``."""
        return await self._write_if_at(record, expected_revision, texts=texts)

    async def _write_if_at(
        self,
        record: ObjectRecord,
        revision: int,
        *,
        texts: Iterable[str] | None = None,
        durable: bool = True,
    ) -> bool:
        """Compare-and-swap: write every column of ``record`` if the row is at ``revision``,
        and bump the row's revision; and its searchable ``texts`` if given."""
        new_texts = None if texts is None else tuple(texts)

        def write(db: Connection) -> int:
            count = _update_if_at(db, record, revision)
            if count and new_texts is not None:
                db.execute(
                    "DELETE FROM object_texts WHERE uid = ? AND instance = ?",
                    (record.uid, record.instance),
                )
                _put_texts(db, record, new_texts)
            return count

        return await self._tx(write, durable=durable) == 1

    async def delete_object(self, instance: str, uid: str, *, durable: bool = True) -> bool:
        """Remove a row entirely (Batch Undo of a Create/Register); True if it was there."""
        count = await self._write(
            "DELETE FROM objects WHERE uid = ? AND instance = ?", (uid, instance), durable=durable
        )
        return count > 0

    async def count_objects(self) -> dict[str, int]:
        """Managed objects per instance (every instance, zero included)."""
        rows = await self._query(
            "SELECT i.name, COUNT(o.uid) FROM instances i LEFT JOIN objects o "
            "ON o.instance = i.name GROUP BY i.name ORDER BY i.name",
            (),
        )
        return {name: count for name, count in rows}

    async def ping(self) -> None:
        """Raises when the database cannot answer."""
        await self._query("SELECT 1", ())

    async def find_objects(self, query: ObjectQuery) -> list[ObjectRecord]:
        clauses = ["o.instance = ?"]
        params: list[Any] = [query.instance]
        for column, values in (
            ("object_type", query.object_types),
            ("state", query.states),
            ("uid", query.uids),
        ):
            if values is not None:
                clauses.append(f"o.{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        for column, value in (
            ("algorithm", query.algorithm),
            ("length", query.length),
            ("name", query.name),
        ):
            if value is not None:
                clauses.append(f"o.{column} = ?")
                params.append(value)
        source, start = "objects o", []
        if query.contains:
            # Driven by the text index: the objects holding the first text, looked up by
            # UID. (SQLite, without statistics, would otherwise walk every object of the
            # instance and test each; CROSS JOIN fixes its join order, PostgreSQL plans
            # by its statistics.)
            first, *others = query.contains
            source = "object_texts t CROSS JOIN objects o"
            clauses.insert(0, "t.instance = ? AND t.text = ? AND o.uid = t.uid")
            start = [query.instance, first]
            for text in others:
                clauses.append(
                    "o.uid IN (SELECT uid FROM object_texts WHERE instance = ? AND text = ?)"
                )
                params.extend((query.instance, text))
        rows = await self._query(
            f"SELECT {_OBJECT_COLUMNS_OF_O} FROM {source} WHERE {' AND '.join(clauses)} "
            "ORDER BY o.seq",
            (*start, *params),
        )
        return [ObjectRecord(*row) for row in rows]


def _update_if_at(db: Connection, record: ObjectRecord, revision: int) -> int:
    return int(
        db.execute(
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
        ).rowcount
    )


def _put_texts(db: Connection, record: ObjectRecord, texts: tuple[str, ...]) -> None:
    for text in texts:
        db.execute(
            "INSERT INTO object_texts (instance, uid, text) VALUES (?, ?, ?)",
            (record.instance, record.uid, text),
        )


def _fetchall(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(sql, params).fetchall()]


def _rowcount(conn: Connection, sql: str, params: tuple[Any, ...]) -> int:
    return int(conn.execute(sql, params).rowcount)


def _rowcounts(conn: Connection, statements: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
    return [int(conn.execute(sql, params).rowcount) for sql, params in statements]


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
