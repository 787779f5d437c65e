"""The cluster change feed: what one node publishes, every node's handlers receive, once, in
order; on PostgreSQL an event whose transaction commits after a later one is not skipped,
and a notification wakes the reader long before its polling interval."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg

from kmipd.service.cluster_events import ROOT_KEY, TRUST, ClusterEvents
from kmipd.store.store import Store


def test_handlers_get_every_event_once_in_order(store_url: str, tmp_path: Path) -> None:
    async def test() -> None:
        node_a = Store.from_url(store_url, base=tmp_path)
        node_b = Store.from_url(store_url, base=tmp_path)
        await node_a.open()
        await node_b.open()
        try:
            seen: list[tuple[str, str]] = []
            feed_b = ClusterEvents(node_b, poll_seconds=60)
            feed_b.on(ROOT_KEY, lambda subject: seen.append((ROOT_KEY, subject)))

            async def trust(subject: str) -> None:
                seen.append((TRUST, subject))

            feed_b.on(TRUST, trust)
            await node_a.add_event(ROOT_KEY, "before-start", 1.0)
            await feed_b.start()  # starts at the feed's end: "before-start" is not replayed
            feed_a = ClusterEvents(node_a)
            await feed_a.publish(ROOT_KEY, "rk-1")
            await feed_a.publish(TRUST)
            await feed_a.publish("unknown-kind", "x")  # no handler: ignored
            await feed_b.read_once()
            await feed_b.read_once()
            assert seen == [(ROOT_KEY, "rk-1"), (TRUST, "")]
            await feed_b.close()
        finally:
            await node_a.close()
            await node_b.close()

    asyncio.run(test())


def test_a_late_commit_is_not_skipped(tmp_path: Path) -> None:
    """Two transactions take sequence numbers 1 and 2; 2 commits first and is read; 1 commits
    later: the reader still gets it."""
    from tests.support.postgres import fresh_database

    with fresh_database("late_commit") as url:

        async def test() -> None:
            store = Store.from_url(url, base=tmp_path)
            await store.open()
            try:
                seen: list[str] = []
                feed = ClusterEvents(store, poll_seconds=60)
                feed.on(ROOT_KEY, seen.append)
                await feed.start()
                with psycopg.connect(url) as slow, psycopg.connect(url, autocommit=True) as fast:
                    slow.execute(
                        "INSERT INTO events (time, kind, subject) VALUES (1, 'root_key', 'first')"
                    )
                    fast.execute(
                        "INSERT INTO events (time, kind, subject) VALUES (2, 'root_key', 'second')"
                    )
                    await feed.read_once()
                    assert seen == ["second"]
                    slow.commit()
                await feed.read_once()
                assert seen == ["second", "first"]
                await feed.read_once()
                assert seen == ["second", "first"]  # once each
            finally:
                await store.close()

        asyncio.run(test())


def test_a_notification_wakes_the_reader_at_once(tmp_path: Path) -> None:
    from tests.support.postgres import fresh_database

    with fresh_database("notify") as url:

        async def test() -> None:
            writer = Store.from_url(url, base=tmp_path)
            reader = Store.from_url(url, base=tmp_path)
            await writer.open()
            await reader.open()
            feed = ClusterEvents(reader, poll_seconds=30, listen_url=url)
            arrived = asyncio.Event()
            feed.on(ROOT_KEY, lambda _: arrived.set())
            try:
                await feed.start()
                deadline = time.monotonic() + 10
                while not feed.listening and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                assert feed.listening
                await asyncio.sleep(0.2)  # past the read that follows LISTEN
                started = time.monotonic()
                await writer.add_event(ROOT_KEY, "rk", time.time())  # not through the feed
                await asyncio.wait_for(arrived.wait(), 5)
                elapsed = time.monotonic() - started
                print(f"notification to handler: {elapsed * 1000:.1f} ms")
                assert elapsed < 1.0  # polling alone would take 30 s
            finally:
                await feed.close()
                await writer.close()
                await reader.close()

        asyncio.run(test())


def test_a_failing_handler_does_not_stop_the_others(tmp_path: Path) -> None:
    kind = ROOT_KEY

    async def test() -> None:
        store = Store.sqlite(tmp_path / "kmipd.db")
        await store.open()
        try:
            feed = ClusterEvents(store)
            seen: list[str] = []

            def broken(_: str) -> None:
                raise RuntimeError("boom")

            feed.on(kind, broken)
            feed.on(kind, seen.append)
            await feed.publish(kind, "s")
            await feed.read_once()
            assert seen == ["s"]
        finally:
            await store.close()

    asyncio.run(test())
