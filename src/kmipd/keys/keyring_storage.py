"""Where the keyring's document lives: a file (one machine) or a PostgreSQL table (a cluster).

The keyring (``keys/keyring.py``) keeps its whole state as one JSON document, with every key's
material already encrypted under the master key; a storage only keeps that document, shares
it between processes or nodes, and says when another one changed it. The interface:

* ``lock()``: a context manager, exclusive across processes (and nodes) for one mutation;
  inside it ``read()`` and ``changed()`` see the latest document and ``write()`` replaces it,
  all or nothing when the block ends.
* ``read()``: the current document, or None when there is none yet.
* ``changed(force=False)``: whether the document may differ from the one last read or
  written here (the file's stat stamp; PostgreSQL's revision, looked at most every
  ``poll_interval`` seconds outside ``lock()``, and always inside it or when ``force``).
* ``write(document)``, ``describe()`` (for messages), ``close()``.

``FileKeyringStorage`` is ``DIR/keyring/root-keys.json`` (mode 0600, replaced atomically under
an ``fcntl`` lock on ``DIR/keyring/.lock``). ``PostgresKeyringStorage`` is one row of the
table ``keyring_document`` (``POSTGRES_KEYRING_DDL``): each mutation runs in one transaction
holding a transaction-level advisory lock and the row lock, and bumps the revision, so nodes
never interleave their changes and each sees another's change within ``poll_interval``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import psycopg

KEYRING_FILE = "root-keys.json"
LOCK_FILE = ".lock"

POSTGRES_KEYRING_TABLE = "keyring_document"
POSTGRES_KEYRING_DDL = (
    "CREATE TABLE IF NOT EXISTS keyring_document ("
    "id SMALLINT PRIMARY KEY CHECK (id = 1), "
    "revision BIGINT NOT NULL, "
    "document TEXT NOT NULL, "
    "updated DOUBLE PRECISION NOT NULL)"
)
# pg_advisory_xact_lock's key for keyring mutations (and schema creation): "kmipdkey".
POSTGRES_KEYRING_LOCK_ID = 0x6B6D6970646B6579
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_UNKNOWN = -1  # a revision no row has: the next changed() says True
RECONNECT_PAUSE_SECONDS = 1.0
# A dead peer or network is noticed in seconds, not at the kernel's TCP timeouts (minutes).
CONNECTION_OPTIONS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "tcp_user_timeout": 5000,
}


def is_postgres_url(url: str | None) -> bool:
    return url is not None and url.startswith(POSTGRES_SCHEMES)


@runtime_checkable
class KeyringStorage(Protocol):
    """Keeps the keyring's document; see the module's docstring."""

    def lock(self) -> AbstractContextManager[None]: ...

    def read(self) -> dict[str, Any] | None: ...

    def changed(self, *, force: bool = False) -> bool: ...

    def write(self, document: dict[str, Any]) -> None: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


def _keyring_error(message: str) -> Exception:
    from kmipd.keys.keyring import KeyringError  # keyring.py imports this module

    return KeyringError(message)


# --- a file -----------------------------------------------------------------------------------


class FileKeyringStorage:
    """``path`` (mode 0600), replaced atomically under an exclusive lock on ``.lock`` beside it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._dir = path.parent
        self._stamp: tuple[int, int, int] | None = None

    @property
    def path(self) -> Path:
        return self._path

    def describe(self) -> str:
        return str(self._path)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def read(self) -> dict[str, Any] | None:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        if stat.st_mode & 0o077:
            raise _keyring_error(
                f"{self._path} is accessible by group or others (mode "
                f"{stat.st_mode & 0o777:o}); it must be 0600: run 'chmod 600 {self._path}'"
            )
        raw = json.loads(self._path.read_text(encoding="utf-8"))
        self._stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        return raw  # type: ignore[no-any-return]

    def changed(self, *, force: bool = False) -> bool:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return False
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size) != self._stamp

    def write(self, document: dict[str, Any]) -> None:
        directory = self._dir
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = self._path.name
        temporary = directory / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self._path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        stat = self._path.stat()
        self._stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def close(self) -> None:
        pass


# --- PostgreSQL -------------------------------------------------------------------------------


def _where(dsn: str) -> str:
    """host:port/dbname of a DSN, for messages (never its password)."""
    from psycopg import conninfo

    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except Exception:  # whatever it is, the DSN is not echoed
        raise _keyring_error("the keyring database's address (the store URL) is invalid") from None
    host = str(parts.get("host") or "localhost")
    port = str(parts.get("port") or "5432")
    dbname = str(parts.get("dbname") or parts.get("user") or "")
    return f"{host}:{port}/{dbname}"


class PostgresKeyringStorage:
    """The document as the one row of ``keyring_document``; one connection, re-made when it
    broke. Each psycopg error becomes a ``KeyringError`` saying the database is unreachable.
    ``create_schema`` runs ``POSTGRES_KEYRING_DDL`` on the first connection if the table is
    missing (the schema migration runs the same statement)."""

    def __init__(
        self,
        dsn: str,
        *,
        poll_interval: float = 0.25,
        connect_timeout: int = 3,
        create_schema: bool = True,
    ) -> None:
        self._where = _where(dsn)
        self._dsn = dsn
        self._password = self._find_password(dsn)
        self._poll_interval = poll_interval
        self._connect_timeout = connect_timeout
        self._create_schema = create_schema
        self._schema_checked = False
        self._conn: psycopg.Connection[Any] | None = None
        self._mutex = threading.RLock()
        self._in_transaction = False
        self._wrote = False
        self._revision = _UNKNOWN  # of the document last read or written here (0: no row)
        self._polled = float("-inf")  # time.monotonic() of the last look at the revision
        self._down_until = float("-inf")  # no new connection attempt before this (monotonic)

    @staticmethod
    def _find_password(dsn: str) -> str | None:
        from psycopg import conninfo

        password = conninfo.conninfo_to_dict(dsn).get("password")
        return str(password) if password else None

    def describe(self) -> str:
        return f"the keyring table in PostgreSQL ({self._where})"

    # --- connection and errors ------------------------------------------------------------

    def _failure(self, exc: BaseException) -> Exception:
        lines = str(exc).strip().splitlines()
        reason = lines[0].strip() if lines else type(exc).__name__
        for secret in (self._dsn, self._password):
            if secret:
                reason = reason.replace(secret, "***")
        if len(reason) > 300:
            reason = reason[:300] + "..."
        return _keyring_error(f"the keyring database is unreachable ({self._where}): {reason}")

    def _connection(self) -> psycopg.Connection[Any]:
        import psycopg

        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop()
        if self._in_transaction:
            raise psycopg.OperationalError("the connection broke during the transaction")
        # Callers run on the event loop's thread: while the database is down, fail at once
        # for a moment after a failed attempt instead of waiting on every use.
        if time.monotonic() < self._down_until:
            raise psycopg.OperationalError("the last connection attempt failed moments ago")
        given = psycopg.conninfo.conninfo_to_dict(self._dsn)
        options = {k: v for k, v in CONNECTION_OPTIONS.items() if k not in given}
        if "connect_timeout" not in given:
            options["connect_timeout"] = self._connect_timeout
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, **options)
        except psycopg.Error:
            self._down_until = time.monotonic() + RECONNECT_PAUSE_SECONDS
            raise
        self._conn = conn
        if self._create_schema and not self._schema_checked:
            self._ensure_schema(conn)
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _broken(self) -> bool:
        """Drop the connection if it broke; whether it did."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._drop()
            return True
        return False

    def _fetchone(self, query: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        """One row; outside a transaction, once more on a new connection if the old one broke
        (the database restarted, or the connection was ended)."""
        import psycopg

        for attempt in (0, 1):
            try:
                return self._connection().execute(query, params).fetchone()
            except psycopg.Error as exc:
                if self._broken() and attempt == 0 and not self._in_transaction:
                    continue
                if self._in_transaction:
                    raise
                raise self._failure(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def ensure_schema(self) -> None:
        """Create the table if it is missing (what the schema migration does too)."""
        import psycopg

        with self._mutex:
            try:
                self._ensure_schema(self._connection())
            except psycopg.Error as exc:
                self._broken()
                raise self._failure(exc) from None

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (POSTGRES_KEYRING_TABLE,))
        exists = row.fetchone()
        if not (exists and exists[0]):
            with conn.transaction():
                # Two nodes starting at once must not both create it.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (POSTGRES_KEYRING_LOCK_ID,))
                conn.execute(POSTGRES_KEYRING_DDL)
        self._schema_checked = True

    # --- the interface --------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        import psycopg

        with self._mutex:
            if self._in_transaction:
                raise RuntimeError("the keyring storage's lock is not reentrant")
            # BEGIN and the lock on a working connection (a broken one is re-made once).
            for attempt in (0, 1):
                try:
                    conn = self._connection()
                    conn.execute("BEGIN")
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (POSTGRES_KEYRING_LOCK_ID,))
                    break
                except psycopg.Error as exc:
                    self._rollback()
                    if self._broken() and attempt == 0:
                        continue
                    raise self._failure(exc) from None
            self._in_transaction, self._wrote = True, False
            try:
                yield
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                self._abort()
                raise self._failure(exc) from None
            except BaseException:
                self._abort()
                raise
            finally:
                self._in_transaction = False

    def _rollback(self) -> None:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            try:
                conn.execute("ROLLBACK")
            except Exception:  # the connection is not trusted any more
                self._drop()

    def _abort(self) -> None:
        self._rollback()
        if self._wrote:  # the revision noted in write() was not committed
            self._revision = _UNKNOWN
        self._wrote = False

    def read(self) -> dict[str, Any] | None:
        with self._mutex:
            query = "SELECT revision, document FROM keyring_document WHERE id = 1"
            if self._in_transaction:
                query += " FOR UPDATE"
            row = self._fetchone(query)
            self._polled = time.monotonic()
            if row is None:
                self._revision = 0
                return None
            self._revision = int(row[0])
            document = json.loads(row[1])
            if not isinstance(document, dict):
                raise _keyring_error(f"{self.describe()} does not hold a keyring document")
            return document

    def changed(self, *, force: bool = False) -> bool:
        with self._mutex:
            now = time.monotonic()
            polled_lately = now - self._polled < self._poll_interval
            if polled_lately and not (force or self._in_transaction):
                return False
            query = "SELECT revision FROM keyring_document WHERE id = 1"
            if self._in_transaction:
                query += " FOR UPDATE"
            row = self._fetchone(query)
            self._polled = now
            return (0 if row is None else int(row[0])) != self._revision

    def write(self, document: dict[str, Any]) -> None:
        if not self._in_transaction:
            raise RuntimeError("write() needs lock()")
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        row = self._fetchone(
            "INSERT INTO keyring_document AS d (id, revision, document, updated) "
            "VALUES (1, 1, %s, %s) ON CONFLICT (id) DO UPDATE SET "
            "revision = d.revision + 1, document = EXCLUDED.document, updated = EXCLUDED.updated "
            "RETURNING revision",
            (text, time.time()),
        )
        assert row is not None
        self._revision, self._wrote = int(row[0]), True
        self._polled = time.monotonic()

    def close(self) -> None:
        with self._mutex:
            self._drop()


def copy_keyring_file_to_postgres(path: Path, dsn: str) -> int:
    """Copy a keyring file's document, as it is (its material stays encrypted under the
    master key), into PostgreSQL, for a setup moving to a cluster; how many keys it holds.
    Refused if PostgreSQL already holds a different keyring; a no-op if it holds this one."""
    source = FileKeyringStorage(path)
    with source.lock():
        document = source.read()
    if document is None:
        raise _keyring_error(f"{path} holds no keyring")
    target = PostgresKeyringStorage(dsn)
    try:
        with target.lock():
            present = target.read()
            if present is not None and present != document and present.get("keys"):
                raise _keyring_error(
                    f"{target.describe()} already holds a different keyring; copy only into a "
                    "new database"
                )
            if present != document:
                target.write(document)
    finally:
        target.close()
    return len(document.get("keys", {}))
