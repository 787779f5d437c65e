"""SQLite: one file, WAL, ``synchronous=FULL``.

With ``synchronous=FULL`` a transaction is on disk when COMMIT returns, so an acknowledged
write survives kill -9 and power loss (``NORMAL`` in WAL mode may lose the last commits on
power loss). Writes and longer reads go through one worker thread: SQLite serialises
writers anyway, and the event loop never waits on an fsync. The per-request lookups of a few
rows by key run on the event loop's thread, on a connection of their own: in WAL mode a
reader never waits for the writer, and a lookup (~7 us) costs less than the hand-off to a
thread and back (~30 us, and the GIL handed to and fro).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kmipd.store.database import SQLITE, StoreError, WorkerThreads

T = TypeVar("T")


class SqliteDatabase(WorkerThreads):
    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        super().__init__(1, "kmipd-sqlite")
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()

    def describe(self) -> str:
        return f"SQLite database {self.path}"

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        # A destroyed key's sealed body is overwritten with zeros in the file, not just freed.
        db.execute("PRAGMA secure_delete=ON")
        db.execute("PRAGMA busy_timeout=10000")
        if db.execute("PRAGMA synchronous").fetchone()[0] != 2:
            raise StoreError("SQLite refused synchronous=FULL; acknowledged writes could be lost")
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            raise StoreError("SQLite refused WAL mode")
        self._db = db

    async def close(self) -> None:
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self._conn(), *args)

    def _write(self, fn: Callable[..., T], *args: Any) -> T:
        db = self._conn()
        try:
            with db:  # one transaction, committed (and fsynced) on exit
                db.execute("BEGIN IMMEDIATE")
                return fn(db, *args)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"write refused: {exc}") from None
        except sqlite3.OperationalError as exc:
            raise StoreError(f"SQLite failed: {exc}") from None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(self._read, fn, *args)

    async def lookup(self, fn: Callable[..., T], *args: Any) -> T:
        self._conn()  # raises when the store is not open
        # Another thread (a second event loop, in tests) waits for the thread's read.
        if not self._reader_lock.acquire(blocking=False):
            return await self.read(fn, *args)
        try:
            if self._reader is None:
                self._reader = self._open_reader()
            return fn(self._reader, *args)
        except sqlite3.OperationalError:
            # Locked for a moment (a checkpoint, another process's write): the worker thread
            # may wait for it; the event loop must not.
            pass
        finally:
            self._reader_lock.release()
        return await self.read(fn, *args)

    def _open_reader(self) -> sqlite3.Connection:
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only=ON")
        reader.execute("PRAGMA busy_timeout=0")
        return reader

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(self._write, fn, *args)

    def write_now(self, fn: Callable[..., T], *args: Any) -> T:
        return self._executor.submit(self._write, fn, *args).result()
