"""Copy a single-node SQLite store into an empty PostgreSQL store, row for row.

Nothing is decrypted: sealed bodies, wrapped wrapping keys and API key hashes are copied as
the bytes they are. The source file is not changed (it is copied to a temporary file, which
is brought to the current schema first). Everything is written in one PostgreSQL
transaction, checked by counting the rows on both sides before it commits: the copy is all
or nothing.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from kmipd.store import migrations
from kmipd.store.database import SQLITE, StoreError
from kmipd.store.postgres_database import PostgresConnection
from kmipd.store.store import Store

# In an order that satisfies the foreign keys. Leases and the change feed are not copied:
# they describe running processes, not data.
TABLES = (
    "instances",
    "certificates",
    "wrapping_keys",
    "objects",
    "object_texts",
    "api_keys",
    "audit",
    "rewrap_jobs",
)
_IDENTITY_COLUMNS = {"objects": "seq", "audit": "seq"}
_BATCH = 1000


class CopyRefused(StoreError):
    """The copy was not made (the message says why); nothing was written."""


def _sqlite_columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def _prepared_copy(source: Path, workdir: Path) -> sqlite3.Connection:
    """A private copy of ``source`` (with its WAL), on the current schema."""
    if not source.is_file():
        raise CopyRefused(f"{source} is not a file")
    target = workdir / "source.db"
    try:
        check = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            # A consistent snapshot, whatever sits in the WAL: the backup API.
            out = sqlite3.connect(target)
            check.backup(out)
            out.close()
        finally:
            check.close()
    except sqlite3.DatabaseError as exc:
        raise CopyRefused(f"{source} is not a readable SQLite database: {exc}") from None
    db = sqlite3.connect(target, isolation_level=None)
    version = migrations.current_version(db, SQLITE)
    if version is None:
        raise CopyRefused(f"{source} is not a kmipd database (no schema version)")
    with db:
        db.execute("BEGIN IMMEDIATE")
        migrations.migrate(db, SQLITE)
    return db


def copy_sqlite_to_postgres(source: Path, store: Store) -> dict[str, int]:
    """Copy every row of ``source`` into the open PostgreSQL ``store``, which must hold no
    instances, objects or API keys. The number of rows copied per table."""
    if store.dialect != "postgresql":
        raise CopyRefused("the destination is not a PostgreSQL store")
    with tempfile.TemporaryDirectory(prefix="kmipd-copy-") as workdir:
        db = _prepared_copy(source, Path(workdir))
        try:
            rows = {table: _read(db, table) for table in TABLES}
        finally:
            db.close()
        result: dict[str, int] = store.database.write_now(_write_all, rows)
        shutil.rmtree(workdir, ignore_errors=True)
        return result


def _read(db: sqlite3.Connection, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    columns = _sqlite_columns(db, table)
    return columns, db.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()


def _write_all(
    conn: PostgresConnection, rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]]
) -> dict[str, int]:
    for table in ("instances", "objects", "api_keys"):
        if conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]:
            raise CopyRefused(
                f"the PostgreSQL database already holds {table}: copy only into a new database"
            )
    copied = {}
    for table, (columns, data) in rows.items():
        wanted = [c for c in columns if c in _postgres_columns(conn, table)]
        positions = [columns.index(c) for c in wanted]
        marks = ", ".join("%s" for _ in wanted)
        sql = f"INSERT INTO {table} ({', '.join(wanted)}) VALUES ({marks})"
        with conn.raw.cursor() as cursor:
            for start in range(0, len(data), _BATCH):
                batch = [
                    tuple(_value(row[i]) for i in positions) for row in data[start : start + _BATCH]
                ]
                cursor.executemany(sql, batch)
        count = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        if count != len(data):
            raise CopyRefused(f"{table}: {len(data)} rows read but {count} in PostgreSQL")
        identity = _IDENTITY_COLUMNS.get(table)
        if identity is not None:
            next_value = int(
                conn.execute(f"SELECT COALESCE(MAX({identity}), 0) + 1 FROM {table}").fetchone()[0]
            )
            conn.raw.execute(
                f"ALTER TABLE {table} ALTER COLUMN {identity} RESTART WITH {next_value}"
            )
        copied[table] = count
    return copied


def _postgres_columns(conn: PostgresConnection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "AND table_schema = current_schema()",
        (table,),
    ).fetchall()
    return {r[0] for r in rows}


def _value(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value
