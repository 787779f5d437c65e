"""Versioned schema migrations, the same list for SQLite and PostgreSQL.

Each migration has a version, a summary, and its statements in each dialect. A new database
gets every migration at once; an existing one is moved forward only by ``kmipd migrate``
(``kmipd serve`` checks the version and refuses a database that is behind or ahead, so
nodes of different versions never change a shared schema under each other). On PostgreSQL
all pending migrations run in one transaction under an advisory lock: two nodes migrating
at once do it once, and a failed migration leaves the schema as it was.

Version 1 is the schema of the first releases; on SQLite it is applied idempotently, so a
database made before migrations were numbered gets the columns it may lack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kmipd.keys.keyring_storage import POSTGRES_KEYRING_DDL
from kmipd.model.attribute_set import AttributeSet
from kmipd.model.searchable import searchable_texts
from kmipd.protocol.errors import DecodeError
from kmipd.store.database import POSTGRESQL, SQLITE, Connection, StoreError

# Serialises migrations between the nodes of a cluster (pg_advisory_xact_lock's key).
_MIGRATION_LOCK = 0x6B6D6970  # "kmip"

_V1_SQLITE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS instances (
        name TEXT PRIMARY KEY,
        root_key_id TEXT NOT NULL,
        created INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS certificates (
        fingerprint TEXT PRIMARY KEY,
        instance TEXT NOT NULL REFERENCES instances(name),
        pem TEXT NOT NULL,
        subject TEXT NOT NULL,
        is_ca INTEGER NOT NULL,
        created INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS wrapping_keys (
        instance TEXT NOT NULL REFERENCES instances(name),
        version INTEGER NOT NULL,
        root_key_id TEXT NOT NULL,
        wrapped BLOB NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (instance, version))""",
    """CREATE TABLE IF NOT EXISTS objects (
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
        revision INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY,
        service_id TEXT NOT NULL,
        role TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        revoked INTEGER,
        description TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS objects_instance ON objects (instance, object_type, state)",
    "CREATE INDEX IF NOT EXISTS objects_name ON objects (instance, name)",
    """CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time INTEGER NOT NULL,
        actor TEXT NOT NULL,
        channel TEXT NOT NULL,
        action TEXT NOT NULL,
        instance TEXT,
        uid TEXT,
        result TEXT NOT NULL,
        reason TEXT)""",
    "CREATE INDEX IF NOT EXISTS audit_time ON audit (time)",
    "CREATE INDEX IF NOT EXISTS audit_instance ON audit (instance, time)",
    "CREATE INDEX IF NOT EXISTS audit_uid ON audit (uid)",
    """CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS rewrap_jobs (
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
        error TEXT)""",
)

# (table, column, declaration): columns the first releases added after a database was made.
_V1_SQLITE_COLUMNS = (
    ("certificates", "last_seen", "INTEGER"),
    ("objects", "last_fetched_by", "TEXT"),
    ("instances", "provider", "TEXT NOT NULL DEFAULT 'builtin'"),
    ("wrapping_keys", "provider", "TEXT NOT NULL DEFAULT 'builtin'"),
    ("instances", "rotation_days", "REAL"),
    ("instances", "last_rotated", "REAL"),
    ("wrapping_keys", "root_key_version", "INTEGER"),
)


def _v1_sqlite(conn: Connection) -> None:
    for statement in _V1_SQLITE:
        conn.execute(statement)
    for table, column, declaration in _V1_SQLITE_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})").fetchall()}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


_V1_POSTGRESQL = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE instances (
        name TEXT PRIMARY KEY,
        root_key_id TEXT NOT NULL,
        created BIGINT NOT NULL,
        provider TEXT NOT NULL DEFAULT 'builtin',
        rotation_days DOUBLE PRECISION,
        last_rotated DOUBLE PRECISION)""",
    """CREATE TABLE certificates (
        fingerprint TEXT PRIMARY KEY,
        instance TEXT NOT NULL REFERENCES instances(name),
        pem TEXT NOT NULL,
        subject TEXT NOT NULL,
        is_ca INTEGER NOT NULL,
        created BIGINT NOT NULL,
        last_seen BIGINT)""",
    """CREATE TABLE wrapping_keys (
        instance TEXT NOT NULL REFERENCES instances(name),
        version INTEGER NOT NULL,
        root_key_id TEXT NOT NULL,
        wrapped BYTEA NOT NULL,
        created BIGINT NOT NULL,
        provider TEXT NOT NULL DEFAULT 'builtin',
        root_key_version INTEGER,
        PRIMARY KEY (instance, version))""",
    """CREATE TABLE objects (
        seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        instance TEXT NOT NULL REFERENCES instances(name),
        object_type INTEGER NOT NULL,
        state INTEGER NOT NULL,
        algorithm INTEGER,
        length INTEGER,
        name TEXT,
        attributes BYTEA NOT NULL,
        sealed BYTEA,
        created BIGINT NOT NULL,
        updated BIGINT NOT NULL,
        last_fetched BIGINT,
        revision BIGINT NOT NULL DEFAULT 0,
        last_fetched_by TEXT)""",
    """CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        service_id TEXT NOT NULL,
        role TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created BIGINT NOT NULL,
        revoked BIGINT,
        description TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX objects_instance ON objects (instance, object_type, state)",
    "CREATE INDEX objects_name ON objects (instance, name)",
    """CREATE TABLE audit (
        seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        time BIGINT NOT NULL,
        actor TEXT NOT NULL,
        channel TEXT NOT NULL,
        action TEXT NOT NULL,
        instance TEXT,
        uid TEXT,
        result TEXT NOT NULL,
        reason TEXT)""",
    "CREATE INDEX audit_time ON audit (time)",
    "CREATE INDEX audit_instance ON audit (instance, time)",
    "CREATE INDEX audit_uid ON audit (uid)",
    """CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE rewrap_jobs (
        instance TEXT PRIMARY KEY,
        target_version INTEGER NOT NULL,
        state TEXT NOT NULL,
        last_seq BIGINT NOT NULL DEFAULT 0,
        rewrapped BIGINT NOT NULL DEFAULT 0,
        skipped BIGINT NOT NULL DEFAULT 0,
        retries BIGINT NOT NULL DEFAULT 0,
        total BIGINT NOT NULL DEFAULT 0,
        passes INTEGER NOT NULL DEFAULT 0,
        started DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        finished DOUBLE PRECISION,
        lease_owner TEXT,
        lease_until DOUBLE PRECISION,
        error TEXT)""",
)

# Version 2: the cluster's change feed (see kmipd.service.cluster_events).
_V2_SQLITE = (
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL)""",
)
_V2_POSTGRESQL = (
    """CREATE TABLE events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        time DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL)""",
    # The built-in keyring's document, shared by the nodes (on SQLite it is a file).
    POSTGRES_KEYRING_DDL,
)


# Version 3: the audit trail's hash chain (kmipd.audit.chain). Idempotent, like version 1.
_V3_TABLE = """CREATE TABLE IF NOT EXISTS audit_chain (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_hash TEXT NOT NULL,
        records BIGINT NOT NULL,
        mac TEXT)"""


def _v3_sqlite(conn: Connection) -> None:
    present = {row[1] for row in conn.execute("PRAGMA table_info(audit)").fetchall()}
    for column in ("prev_hash", "hash"):
        if column not in present:
            conn.execute(f"ALTER TABLE audit ADD COLUMN {column} TEXT")
    conn.execute(_V3_TABLE)


_V3_POSTGRESQL = (
    "ALTER TABLE audit ADD COLUMN IF NOT EXISTS prev_hash TEXT",
    "ALTER TABLE audit ADD COLUMN IF NOT EXISTS hash TEXT",
    _V3_TABLE,
)


# Version 4: the index of searchable texts (kmipd.model.searchable), filled from the
# objects already stored, so that Locate by x-Name does not read every object. Idempotent.
_V4_TABLE = """CREATE TABLE IF NOT EXISTS object_texts (
        instance TEXT NOT NULL,
        uid TEXT NOT NULL REFERENCES objects(uid) ON DELETE CASCADE,
        text TEXT NOT NULL,
        PRIMARY KEY (uid, text))"""
_V4_INDEX = "CREATE INDEX IF NOT EXISTS object_texts_text ON object_texts (instance, text)"


def _v4(conn: Connection) -> None:
    conn.execute(_V4_TABLE)
    conn.execute(_V4_INDEX)
    for uid, instance, attributes in conn.execute(
        "SELECT uid, instance, attributes FROM objects"
    ).fetchall():
        try:
            texts = searchable_texts(AttributeSet.from_bytes(bytes(attributes)))
        except DecodeError:  # no attribute set (rows made by hand in old tests): no texts
            continue
        for text in texts:
            conn.execute(
                "INSERT INTO object_texts (instance, uid, text) VALUES (?, ?, ?) "
                "ON CONFLICT (uid, text) DO NOTHING",
                (instance, uid, text),
            )


# Version 5: the registry of running nodes (kmipd.service.node_registry): one row per
# ``kmipd serve``, upserted on every heartbeat, deleted when it stops. Idempotent; the same
# statement for both engines (SQLite reads DOUBLE PRECISION as REAL).
_V5 = (
    """CREATE TABLE IF NOT EXISTS nodes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kmip_port INTEGER NOT NULL,
        kmip_endpoints TEXT NOT NULL,
        https_port INTEGER NOT NULL,
        version TEXT NOT NULL,
        started DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        heartbeat_seconds DOUBLE PRECISION NOT NULL,
        checks TEXT NOT NULL)""",
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    summary: str
    sqlite: tuple[str, ...] | Callable[[Connection], None]
    postgresql: tuple[str, ...] | Callable[[Connection], None]

    def apply(self, conn: Connection, dialect: str) -> None:
        steps = self.sqlite if dialect == SQLITE else self.postgresql
        if callable(steps):
            steps(conn)
            return
        for statement in steps:
            conn.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "instances, certificates, wrapping keys, objects, API keys, audit, leases, re-wrap jobs",
        _v1_sqlite,
        _V1_POSTGRESQL,
    ),
    Migration(
        2, "the cluster change feed (events), the shared keyring", _V2_SQLITE, _V2_POSTGRESQL
    ),
    Migration(3, "the audit trail's hash chain", _v3_sqlite, _V3_POSTGRESQL),
    Migration(4, "the index of the texts Locate searches (x-Name)", _v4, _v4),
    Migration(5, "the registry of running nodes", _V5, _V5),
)
LATEST = MIGRATIONS[-1].version


class SchemaMismatch(StoreError):
    """The database's schema is not the version this kmipd runs on."""


def current_version(conn: Connection, dialect: str) -> int | None:
    """The database's schema version; None for a database kmipd never used."""
    if dialect == SQLITE:
        present = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
    else:
        present = conn.execute("SELECT to_regclass('schema_version')").fetchone()
        present = present if present and present[0] is not None else None
    if not present:
        return None
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row is not None else None


def migrate(conn: Connection, dialect: str) -> list[int]:
    """Apply what is pending, in the caller's transaction; the versions applied."""
    if dialect == POSTGRESQL:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
    version = current_version(conn, dialect)
    if version is not None and version > LATEST:
        raise SchemaMismatch(too_new(version))
    done = []
    for migration in MIGRATIONS:
        # SQLite's version 1 is idempotent: run again, it adds what an early database lacks.
        rerun = dialect == SQLITE and migration.version == 1 and version == 1
        if version is None or migration.version > version or rerun:
            migration.apply(conn, dialect)
            if not rerun:
                done.append(migration.version)
    if version is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (LATEST,))
    elif done:
        conn.execute("UPDATE schema_version SET version = ?", (LATEST,))
    return done


def too_new(version: int) -> str:
    return (
        f"the database schema is version {version}, newer than this kmipd understands "
        f"({LATEST}): run a kmipd release that knows it"
    )


def behind(version: int, where: str) -> str:
    return (
        f"the database schema ({where}) is version {version}, this kmipd needs version "
        f"{LATEST}: stop every node, back up the database, then run 'kmipd migrate'"
    )
