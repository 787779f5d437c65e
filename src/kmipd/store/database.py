"""What the object store asks of a database engine, and the error every engine raises.

Two real engines: :mod:`kmipd.store.sqlite_database` (one file, single node) and
:mod:`kmipd.store.postgres_database` (a cluster of nodes). The store's SQL is written once,
with ``?`` placeholders; an engine runs a function ``fn(connection, *args)`` either as a read
or as one write transaction that is durable when it returns.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

SQLITE, POSTGRESQL = "sqlite", "postgresql"

# How late a write made with ``durable=False`` reaches the disk at most (PostgreSQL's
# wal_writer_delay is 0.2 s by default too).
FLUSH_DELAY = 0.2


class StoreError(Exception):
    """The store failed or refused a write; the message is safe to log, never to a client."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (a node that lost its database); retried later."""


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection the store's SQL uses (``?`` placeholders)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...


class Database(Protocol):
    dialect: str

    def describe(self) -> str:
        """Where the data is, for messages (never a password)."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` outside a write transaction."""
        ...

    async def lookup(self, fn: Callable[..., T], *args: Any) -> T:
        """A read of a few rows by key (the per-request reads): like :meth:`read`, but an
        engine may run it at once on the caller's thread."""
        ...

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        """``fn(connection, *args)`` in one transaction, committed (durably) on return;
        rolled back if ``fn`` raises. A refused write raises :class:`StoreError`.
        ``durable=False``: committed (a crash of the process loses nothing) but flushed to
        disk up to :data:`FLUSH_DELAY` seconds later; what a power loss can lose then."""
        ...

    def write_now(self, fn: Callable[..., T], *args: Any) -> T:
        """The same as :meth:`write`, from a thread that is not the event loop's (the CLI,
        migrations)."""
        ...


class WorkerThreads:
    """What both engines share: their blocking calls run on worker threads of their own
    (SQLite: one, as SQLite serialises writers anyway; PostgreSQL: one per connection), so
    the event loop never waits on a commit or on the network."""

    _executor: ThreadPoolExecutor

    def __init__(self, workers: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        raise NotImplementedError

    async def open(self) -> None:
        await self._run(self._open)


def log_failure(logger: logging.Logger, message: str, *args: object) -> None:
    """Log the exception being handled: a store failure in one line (a database that is down
    is expected in a cluster, and said once per attempt is enough), anything else with its
    traceback."""
    exc = sys.exc_info()[1]
    if isinstance(exc, StoreError):
        logger.warning(message + ": %s", *args, exc)
    else:
        logger.exception(message, *args)
