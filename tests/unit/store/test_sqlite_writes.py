"""The SQLite engine's writes: concurrent writes share a commit and a failing one fails alone;
a write made with ``durable=False`` is committed at once (readable, and kept by a crash of
the process) and flushed to disk within FLUSH_DELAY; lookups run on the caller's thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kmipd.store.database import FLUSH_DELAY, StoreError
from kmipd.store.sqlite_database import SqliteDatabase


def _insert(db: Any, key: str) -> str:
    db.execute("INSERT INTO t (k) VALUES (?)", (key,))
    return key


def _keys(db: Any) -> list[str]:
    return [row[0] for row in db.execute("SELECT k FROM t ORDER BY k").fetchall()]


def _synchronous(db: Any) -> int:
    return int(db.execute("PRAGMA synchronous").fetchone()[0])


async def _opened(path: Path) -> SqliteDatabase:
    database = SqliteDatabase(path)
    await database.open()
    await database.write(lambda db: db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)"))
    return database


def test_concurrent_writes_share_commits_and_a_failing_one_fails_alone(tmp_path: Path) -> None:
    async def main() -> None:
        database = await _opened(tmp_path / "w.db")
        commits = 0
        original = database._commit_group

        def counting(batch: Any) -> Any:
            nonlocal commits
            commits += 1
            return original(batch)

        database._commit_group = counting  # type: ignore[method-assign]
        try:
            await database.write(_insert, "taken")
            keys = [f"k{i:03d}" for i in range(100)]
            results = await asyncio.gather(
                *(database.write(_insert, key) for key in keys),
                database.write(_insert, "taken"),  # a primary key violation, in the middle
                *(database.write(_insert, key) for key in [f"m{i:03d}" for i in range(100)]),
                return_exceptions=True,
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            assert len(failed) == 1 and isinstance(failed[0], StoreError)
            assert "write refused" in str(failed[0])
            stored = await database.read(_keys)
            assert len(stored) == 201  # every other write, and the first "taken"
            assert 1 <= commits < 100  # grouped: far fewer commits than writes
            assert await database.read(_synchronous) == 2  # FULL
        finally:
            await database.close()

    asyncio.run(main())


def test_a_write_that_need_not_wait_for_the_disk_is_committed_then_flushed(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        path = tmp_path / "n.db"
        database = await _opened(path)
        try:
            await database.write(_insert, "later", durable=False)
            # Committed: another connection (another process) reads it at once.
            other = sqlite3.connect(path)
            try:
                assert _keys(other) == ["later"]
            finally:
                other.close()
            assert await database.read(_synchronous) == 2  # FULL again for the next write
            assert database._flush_queued
            deadline = time.monotonic() + FLUSH_DELAY * 10
            while database._flush_queued and time.monotonic() < deadline:
                await asyncio.sleep(FLUSH_DELAY / 4)
            assert not database._flush_queued, "the WAL was not flushed after FLUSH_DELAY"
            await database.write(_insert, "now")  # durable: no flush planned
            assert not database._flush_queued
        finally:
            await database.close()

    asyncio.run(main())


def test_lookups_run_on_the_callers_thread_and_see_committed_writes(tmp_path: Path) -> None:
    async def main() -> None:
        database = await _opened(tmp_path / "l.db")
        try:
            await database.write(_insert, "a")
            seen: list[int] = []

            def where(db: Any) -> list[str]:
                seen.append(threading.get_ident())
                return _keys(db)

            assert await database.lookup(where) == ["a"]
            assert seen == [threading.get_ident()]
            await database.write(_insert, "b")
            assert await database.lookup(_keys) == ["a", "b"]
            with pytest.raises(sqlite3.OperationalError):  # the lookup connection reads only
                await database.lookup(_insert, "c")
        finally:
            await database.close()

    asyncio.run(main())


def test_a_write_to_a_store_not_open_fails_instead_of_hanging(tmp_path: Path) -> None:
    async def main() -> None:
        database = SqliteDatabase(tmp_path / "closed.db")  # never opened
        for durable in (True, False):
            with pytest.raises(StoreError, match="not open"):
                await asyncio.wait_for(database.write(_insert, "x", durable=durable), 10)
        with pytest.raises(StoreError, match="not open"):
            await asyncio.wait_for(
                asyncio.gather(*(database.write(_insert, f"k{i}") for i in range(5))), 10
            )

    asyncio.run(main())
