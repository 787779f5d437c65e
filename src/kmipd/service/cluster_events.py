"""The cluster's change feed: what one node changed that every other node must act on.

A node that deletes or disables a root key, removes a certificate or rotates a wrapping key
records an event in the store (:mod:`kmipd.store.events`); every node reads the feed and runs
the handlers registered for the event's kind (drop cached wrapping keys, reload the trusted
certificates...). Handlers must be idempotent: a node also sees its own events.

How fast: on PostgreSQL a node LISTENs on ``kmipd_events`` and reads the feed as soon as an
event commits (milliseconds); it also reads it every ``poll_seconds``, the backstop if a
notification is lost (and all SQLite needs: several processes on one file). A sequence
number taken by a transaction that commits after a later one is not skipped: a gap in the
sequence is looked at again until it fills or is old enough to be a rolled-back insert.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable

from kmipd.store.events import NOTIFY_CHANNEL, Event
from kmipd.store.store import Store, StoreError

log = logging.getLogger(__name__)

Handler = Callable[[str], Awaitable[None] | None]

# Event kinds.
ROOT_KEY = "root_key"  # subject: a root key id whose state changed (disable, delete, enable)
TRUST = "trust"  # the allowed certificates or the instances changed
WRAPPING_KEY = "wrapping_key"  # subject: an instance whose wrapping keys changed

GAP_PATIENCE_SECONDS = 30.0  # a missing sequence number this old was a rolled-back insert
KEEP_SECONDS = 3600.0  # events older than this are pruned
PRUNE_EVERY_SECONDS = 600.0


class ClusterEvents:
    def __init__(
        self,
        store: Store,
        *,
        poll_seconds: float = 0.5,
        listen_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._poll = max(0.01, poll_seconds)
        self._listen_url = listen_url
        self._clock = clock
        self._handlers: dict[str, list[Handler]] = {}
        self._last = 0
        self._gaps: dict[int, float] = {}  # missing seq -> when it was first missed
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_prune = 0.0
        self.listening = False  # a LISTEN connection is up (PostgreSQL)

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    async def publish(self, kind: str, subject: str = "") -> None:
        """Record a change for every node (this one included)."""
        await self._store.add_event(kind, subject, self._clock())
        self._wake.set()

    async def start(self) -> None:
        """Begin at the feed's end: what happened before, this node loaded at start-up."""
        self._last = await self._store.last_event_seq()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._read_forever()))
        if self._listen_url is not None:
            self._tasks.append(loop.create_task(self._listen_forever(self._listen_url)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def read_once(self) -> list[Event]:
        """Read what is new (and any gap that filled) and run its handlers."""
        events = await self._store.events_after(self._last)
        if self._gaps:
            missing = set(self._gaps)
            late = await self._store.events_after(min(missing) - 1, limit=len(missing) + 1000)
            filled = [e for e in late if e.seq in missing]
            events = sorted(filled + events, key=lambda e: e.seq)
        now = self._clock()
        for event in events:
            self._gaps.pop(event.seq, None)
            if event.seq > self._last:
                for missing_seq in range(self._last + 1, event.seq):
                    self._gaps.setdefault(missing_seq, now)
                self._last = event.seq
            await self._dispatch(event)
        for seq, since in list(self._gaps.items()):
            if now - since > GAP_PATIENCE_SECONDS:
                del self._gaps[seq]
        return events

    async def _dispatch(self, event: Event) -> None:
        for handler in self._handlers.get(event.kind, ()):
            try:
                result = handler(event.subject)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one failing handler must not stop the others
                log.exception("handling cluster event %s %s failed", event.kind, event.subject)

    async def _read_forever(self) -> None:
        failing = False
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()
            try:
                await self.read_once()
                await self._prune()
                if failing:
                    log.info("the cluster change feed is readable again")
                failing = False
            except StoreError as exc:
                if not failing:
                    log.warning("cannot read the cluster change feed: %s", exc)
                failing = True

    async def _prune(self) -> None:
        now = self._clock()
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        await self._store.prune_events(now - KEEP_SECONDS)

    async def _listen_forever(self, url: str) -> None:
        import psycopg  # PostgreSQL only

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    url, autocommit=True, connect_timeout=3, application_name="kmipd-listen"
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.listening = True
                    self._wake.set()  # whatever happened while not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except psycopg.Error as exc:
                if self.listening:
                    log.warning("cluster notifications lost (%s); polling", type(exc).__name__)
            self.listening = False
            await asyncio.sleep(1.0)
