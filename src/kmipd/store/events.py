"""The cluster's change feed in the store: one row per change another node must act on (a
root key disabled or deleted, a certificate removed, a wrapping key rotated...).

A mixin of :class:`kmipd.store.store.Store`. On PostgreSQL the insert also sends
``NOTIFY kmipd_events`` in the same transaction, so listening nodes hear of it when it
commits; every node also polls the feed, which is the backstop (and all SQLite needs: the
processes sharing a SQLite file see each other's changes the same way).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kmipd.store.database import POSTGRESQL, Connection

NOTIFY_CHANNEL = "kmipd_events"


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    time: float
    kind: str
    subject: str


class EventQueries:
    """Mixed into the store; relies on its ``_query``, ``_write`` and ``_tx``."""

    _query: Callable[..., Awaitable[list[tuple[Any, ...]]]]
    _write: Callable[..., Awaitable[int]]
    _tx: Callable[..., Awaitable[Any]]
    dialect: str

    async def add_event(self, kind: str, subject: str, now: float) -> int:
        """Record a change; its sequence number."""
        notify = self.dialect == POSTGRESQL

        def add(db: Connection) -> int:
            row = db.execute(
                "INSERT INTO events (time, kind, subject) VALUES (?, ?, ?) RETURNING seq",
                (now, kind, subject),
            ).fetchone()
            if notify:
                db.execute("SELECT pg_notify(?, ?)", (NOTIFY_CHANNEL, str(row[0])))
            return int(row[0])

        result: int = await self._tx(add)
        return result

    async def events_after(self, seq: int, limit: int = 1000) -> list[Event]:
        rows = await self._query(
            "SELECT seq, time, kind, subject FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [Event(int(s), float(t), k, sub) for s, t, k, sub in rows]

    async def last_event_seq(self) -> int:
        rows = await self._query("SELECT COALESCE(MAX(seq), 0) FROM events")
        return int(rows[0][0])

    async def prune_events(self, before: float) -> int:
        """Forget changes older than ``before`` (every node has long acted on them)."""
        return await self._write("DELETE FROM events WHERE time < ?", (before,))
