"""SQLite: one file, WAL, ``synchronous=FULL``.

With ``synchronous=FULL`` a transaction is on disk when COMMIT returns, so an acknowledged
write survives kill -9 and power loss (``NORMAL`` in WAL mode may lose the last commits on
power loss). Writes and longer reads go through one worker thread: SQLite serialises
writers anyway, and the event loop never waits on an fsync.

**Group commit.** The writes that arrive while the thread is busy are run together: each in
a savepoint of one transaction (a write that fails is rolled back alone and gets its error),
then one COMMIT, one fsync, for all of them; each caller's write returns once that commit is
on disk. Under concurrent Creates this turns an fsync per request into one per busy moment.

The per-request lookups of a few rows by key run on the event loop's thread, on a connection
of their own: in WAL mode a reader never waits for the writer, and a lookup (~7 us) costs
less than the hand-off to a thread and back (~30 us, and the GIL handed to and fro).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kmipd.store.database import FLUSH_DELAY, SQLITE, StoreError, WorkerThreads

T = TypeVar("T")

# The most writes one commit takes (the rest wait for the next one).
GROUP_MAX = 256

# A queued write: fn, args, the caller's loop and future.
_Pending = tuple[
    Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]", bool
]


class SqliteDatabase(WorkerThreads):
    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        super().__init__(1, "kmipd-sqlite")
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self._draining = False  # a drain is queued on, or running in, the worker thread
        self._flush_queued = False  # a commit is not synced yet, and its flush is planned

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
        if self._db is not None and self._flush_queued:
            await self._run(self._flush)
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
        except sqlite3.Error as exc:
            raise _store_error(exc) from None

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
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            # Locked for a moment (a checkpoint, another process's write): the worker thread
            # may wait for it; the event loop must not.
        finally:
            self._reader_lock.release()
        return await self.read(fn, *args)

    def _open_reader(self) -> sqlite3.Connection:
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only=ON")
        reader.execute("PRAGMA busy_timeout=0")
        return reader

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._pending_lock:
            self._pending.append((fn, args, loop, future, durable))
            start = not self._draining
            self._draining = True
        if start:
            self._executor.submit(self._drain)
        return await future

    def _drain(self) -> None:
        """Worker thread: commit what is queued, in groups, until the queue is empty."""
        while True:
            with self._pending_lock:
                batch, self._pending = self._pending[:GROUP_MAX], self._pending[GROUP_MAX:]
                if not batch:
                    self._draining = False
                    return
            durable = any(item[4] for item in batch)
            try:
                outcomes = self._commit(batch, durable)
            except BaseException as exc:  # not open, or SQLite failed outside a write
                outcomes = [(False, _store_error(exc))] * len(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}
            for (_fn, _args, loop, future, _durable), (ok, value) in zip(
                batch, outcomes, strict=True
            ):
                by_loop.setdefault(loop, []).append((future, ok, value))
            if not durable and not self._flush_queued:
                self._flush_queued = True
                loop = batch[0][2]
                if not loop.is_closed():
                    loop.call_soon_threadsafe(loop.call_later, FLUSH_DELAY, self._queue_flush)
            for loop, results in by_loop.items():
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_settle, results)

    def _commit(self, batch: list[_Pending], durable: bool) -> list[tuple[bool, Any]]:
        if durable:
            return self._commit_group(batch) if len(batch) > 1 else self._commit_one(batch)
        self._set_synchronous("NORMAL")
        try:
            return self._commit_group(batch) if len(batch) > 1 else self._commit_one(batch)
        finally:
            self._set_synchronous("FULL")

    def _set_synchronous(self, level: str) -> None:
        """WAL mode: FULL syncs the WAL at every commit; NORMAL leaves it to a later FULL
        commit, a checkpoint, or :meth:`_flush`."""
        self._conn().execute(f"PRAGMA synchronous={level}")

    def _queue_flush(self) -> None:
        """On the loop, FLUSH_DELAY after a commit that was not synced: sync it now."""
        if self._db is not None:
            self._executor.submit(self._flush)

    def _flush(self) -> None:
        """Worker thread: put the WAL (every commit made so far) on disk."""
        self._flush_queued = False
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:  # checkpointed and removed: already on disk
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _commit_one(self, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        fn, args, _loop, _future, _durable = batch[0]
        try:
            return [(True, self._write(fn, *args))]
        except BaseException as exc:
            return [(False, exc)]

    def _commit_group(self, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        db = self._conn()
        outcomes: list[tuple[bool, Any]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(False, _store_error(exc))] * len(batch)
        try:
            for fn, args, _loop, _future, _durable in batch:
                db.execute("SAVEPOINT one_write")
                try:
                    value = fn(db, *args)
                except BaseException as exc:
                    db.execute("ROLLBACK TO one_write")
                    db.execute("RELEASE one_write")
                    outcomes.append((False, _store_error(exc)))
                else:
                    db.execute("RELEASE one_write")
                    outcomes.append((True, value))
            db.execute("COMMIT")
        except sqlite3.Error as exc:  # the commit (or a savepoint) failed: nothing is written
            if db.in_transaction:
                db.execute("ROLLBACK")
            return [(False, _store_error(exc))] * len(batch)
        return outcomes

    def write_now(self, fn: Callable[..., T], *args: Any) -> T:
        return self._executor.submit(self._write, fn, *args).result()


def _store_error(exc: BaseException) -> BaseException:
    """What a write's caller gets for ``exc``: SQLite's errors as :class:`StoreError`."""
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreError(f"write refused: {exc}")
    if isinstance(exc, sqlite3.OperationalError):
        return StoreError(f"SQLite failed: {exc}")
    return exc


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """On the caller's loop: hand each write its outcome (unless its caller gave up)."""
    for future, ok, value in results:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
