"""A consistent, online snapshot of the store and the keyring document, for either engine.

The snapshot is a SQLite database on the current schema (the one the backup file carries):

* SQLite: the sqlite3 backup API on a read-only connection copies the database as of one
  read transaction (WAL mode: the server keeps writing meanwhile, and what it commits after
  the copy began is not in it). The keyring file is read afterwards, under the keyring's
  lock: every root key the snapshot's rows name was made before them, so it is there.
* PostgreSQL: one REPEATABLE READ, READ ONLY transaction reads every table and the keyring
  document, so rows and keyring are of one instant.

Leases and the change feed describe running processes, not data: they are left out. Nothing
is decrypted; the keyring document is refused if its material is not encrypted (format 1).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmipd import config
from kmipd.keys.keyring import KEYRING_DIR, KEYRING_FILE, KeyringError
from kmipd.keys.keyring_storage import CONNECTION_OPTIONS, FileKeyringStorage
from kmipd.store import migrations
from kmipd.store.database import SQLITE, StoreError
from kmipd.store.postgres_database import is_postgres_url, redact
from kmipd.store.sqlite_to_postgres import TABLES, _prepared_copy
from kmipd.store.store import Store

# Every table holding data; TABLES is the order the foreign keys need.
DATA_TABLES = (*TABLES, "audit_chain")
PROCESS_TABLES = ("leases", "events", "nodes")
_ENCRYPTED_KEYRING_FORMAT = 2


class SnapshotFailed(StoreError):
    """No snapshot was made; the message says why."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    store: bytes  # the SQLite file
    keyring: bytes | None  # the keyring document (JSON), None when there is none
    engine: str


def take(settings: config.Settings) -> Snapshot:
    if is_postgres_url(settings.store.url):
        return _from_postgres(settings.store.url)
    # The store resolves (and checks) the URL; it is never opened here.
    store = Store.from_url(settings.store.url, base=settings.data_dir)
    path: Path = store.database.path  # type: ignore[attr-defined]
    return _from_sqlite(path, settings.data_dir / KEYRING_DIR / KEYRING_FILE)


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kmipd-backup-") as name:
        yield Path(name)


def _from_sqlite(database: Path, keyring_file: Path) -> Snapshot:
    with _workdir() as workdir:
        db = _prepared_copy(database, workdir)  # the backup API, then brought to LATEST
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")
                for table in PROCESS_TABLES:
                    db.execute(f"DELETE FROM {table}")
            db.execute("VACUUM")
        finally:
            db.close()
        data = (workdir / "source.db").read_bytes()
    keyring = FileKeyringStorage(keyring_file)
    try:
        with keyring.lock():
            document = keyring.read()
    except KeyringError as exc:
        raise SnapshotFailed(f"cannot read the keyring: {exc.message}") from None
    except (OSError, ValueError) as exc:
        raise SnapshotFailed(f"cannot read the keyring {keyring_file}: {exc}") from None
    return Snapshot(data, _keyring_bytes(document, str(keyring_file)), SQLITE)


def _from_postgres(url: str) -> Snapshot:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5, **CONNECTION_OPTIONS) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute("SELECT current_setting('transaction_isolation')").fetchone()
            assert row is not None and row[0] == "repeatable read", row
            _check_version(_postgres_schema_version(conn), redact(url))
            rows = {table: _postgres_rows(conn, table) for table in DATA_TABLES}
            found = conn.execute("SELECT document FROM keyring_document WHERE id = 1").fetchone()
    except psycopg.Error as exc:
        raise SnapshotFailed(
            f"cannot read PostgreSQL database {redact(url)}: {type(exc).__name__}"
        ) from None
    document = json.loads(found[0]) if found else None
    keyring = _keyring_bytes(document, f"the keyring in {redact(url)}")
    with _workdir() as workdir:
        path = workdir / "snapshot.db"
        db = sqlite3.connect(path, isolation_level=None)
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")
                migrations.migrate(db, SQLITE)
                for table, (columns, data) in rows.items():
                    _insert(db, table, columns, data)
        finally:
            db.close()
        return Snapshot(path.read_bytes(), keyring, "postgresql")


def _check_version(version: int | None, where: str) -> None:
    if version is None:
        raise SnapshotFailed(f"PostgreSQL database {where} holds no kmipd setup")
    if version != migrations.LATEST:
        raise SnapshotFailed(
            f"the schema of PostgreSQL database {where} is version {version}, this kmipd "
            f"backs up version {migrations.LATEST}: back it up with the kmipd release that "
            "serves it"
        )


def _postgres_schema_version(conn: Any) -> int | None:
    if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
        return None
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else None


def _postgres_rows(conn: Any, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = conn.execute(f"SELECT * FROM {table}")
    columns = [c.name for c in cursor.description]
    return columns, [tuple(_plain(v) for v in row) for row in cursor.fetchall()]


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


def _insert(
    db: sqlite3.Connection, table: str, columns: list[str], data: list[tuple[Any, ...]]
) -> None:
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    wanted = [c for c in columns if c in present]
    positions = [columns.index(c) for c in wanted]
    marks = ", ".join("?" for _ in wanted)
    db.executemany(
        f"INSERT INTO {table} ({', '.join(wanted)}) VALUES ({marks})",
        [tuple(row[i] for i in positions) for row in data],
    )


def _keyring_bytes(document: dict[str, Any] | None, where: str) -> bytes | None:
    if document is None:
        return None
    if document.get("format", 1) != _ENCRYPTED_KEYRING_FORMAT:
        raise SnapshotFailed(
            f"{where} is in the old format that keeps key material in plaintext; start "
            "'kmipd serve' once (it encrypts the keyring), then back up again"
        )
    return json.dumps(document, indent=1, sort_keys=True).encode()
