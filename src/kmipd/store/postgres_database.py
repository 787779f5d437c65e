"""PostgreSQL: the store of a cluster of kmipd nodes (psycopg 3 and its connection pool).

The store's functions are synchronous (they are shared with SQLite), so they run on a small
pool of worker threads, each with a pooled connection; psycopg releases the GIL while it
waits on the network. Every session sets ``synchronous_commit = on``: a commit returns only
when PostgreSQL has flushed it (and, with synchronous replicas configured, when they have
it), whatever the server's default, so an acknowledged key is never lost to a crash.

A broken connection (the database restarted, the network dropped) is noticed when it is
taken from the pool and replaced; while the database is unreachable every call raises
:class:`StoreUnavailable` quickly, and the node recovers by itself when it is back.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from kmipd.keys.keyring_storage import CONNECTION_OPTIONS
from kmipd.store.database import POSTGRESQL, StoreError, StoreUnavailable, WorkerThreads

T = TypeVar("T")
log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 3
# How long a request waits for a connection; then the database counts as unreachable, and
# for UNREACHABLE_PAUSE_SECONDS every call fails at once (a node without its database answers
# vCenter quickly, which then tries the cluster's other servers) while the pool reconnects.
POOL_TIMEOUT_SECONDS = 2.0
UNREACHABLE_PAUSE_SECONDS = 1.0


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresConnection:
    """A psycopg connection that takes the store's ``?`` placeholders."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.raw.execute(_placeholders(sql), tuple(params))


def _flushed_later(db: PostgresConnection, fn: Callable[..., T], *args: Any) -> T:
    """``fn`` in a transaction whose commit the WAL writer flushes (within
    wal_writer_delay, 0.2 s by default) instead of the commit waiting for it."""
    db.raw.execute("SET LOCAL synchronous_commit = off")
    return fn(db, *args)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET synchronous_commit = on")
    conn.commit()


class PostgresDatabase(WorkerThreads):
    dialect = POSTGRESQL

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self._pool_size = max(1, pool_size)
        super().__init__(self._pool_size, "kmipd-postgres")
        self.url = url
        self._pool: ConnectionPool[Any] | None = None
        self._unreachable_until = float("-inf")  # time.monotonic()

    def describe(self) -> str:
        return f"PostgreSQL database {redact(self.url)}"

    def _open(self) -> None:
        pool: ConnectionPool[Any] = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            kwargs={
                **CONNECTION_OPTIONS,
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "application_name": "kmipd",
            },
            configure=_configure,
            check=ConnectionPool.check_connection,
            timeout=POOL_TIMEOUT_SECONDS,
            reconnect_timeout=0,  # keep trying for ever; a node outlives a database outage
            open=False,
            name="kmipd",
        )
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS + 2)
        except PoolTimeout:
            pool.close()
            raise StoreUnavailable(f"cannot connect to {self.describe()}") from None
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await self._run(pool.close)
        self._executor.shutdown(wait=True)

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._pool is None:
            raise StoreError("the store is not open")
        if time.monotonic() < self._unreachable_until:
            raise StoreUnavailable(f"{self.describe()} is unreachable")
        try:
            with self._pool.connection() as raw:
                # Leaving the block commits (or, on an exception, rolls back).
                return fn(PostgresConnection(raw), *args)
        except psycopg.errors.IntegrityError as exc:
            raise StoreError(f"write refused: {exc.sqlstate} {type(exc).__name__}") from None
        except PoolTimeout:
            self._unreachable_until = time.monotonic() + UNREACHABLE_PAUSE_SECONDS
            raise StoreUnavailable(f"{self.describe()} is unreachable (no connection)") from None
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                f"{self.describe()} is unreachable ({type(exc).__name__})"
            ) from None
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL failed: {exc.sqlstate} {type(exc).__name__}") from None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(self._call, fn, args)

    async def lookup(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.read(fn, *args)  # a network round trip: never on the loop

    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        if not durable:
            return await self._run(self._call, _flushed_later, (fn, *args))
        return await self._run(self._call, fn, args)

    def write_now(self, fn: Callable[..., T], *args: Any) -> T:
        return self._executor.submit(self._call, fn, args).result()
