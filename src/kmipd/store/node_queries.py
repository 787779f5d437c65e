"""The registry of running nodes (``nodes`` table, schema version 5): one row per
``kmipd serve`` sharing the store, written by the node itself on every heartbeat
(:mod:`kmipd.service.node_registry`) and read by ``GET /admin/v1/nodes``.

A mixin of :class:`kmipd.store.store.Store`, kept apart so the store's core stays small.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

_NODE_COLUMNS = (
    "id, name, kmip_port, kmip_endpoints, https_port, version, started, last_seen, "
    "heartbeat_seconds, checks"
)


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One node as it last described itself. Times are seconds since the epoch."""

    node_id: str
    name: str  # its host name
    kmip_port: int
    kmip_endpoints: tuple[str, ...]  # host:port, the names its server certificate is valid for
    https_port: int
    version: str  # of kmipd
    started: float
    last_seen: float  # its last heartbeat
    heartbeat_seconds: float  # how often it writes its row
    checks: dict[str, str] = field(default_factory=dict)  # its readiness checks, as last seen

    def values(self) -> tuple[Any, ...]:
        return (
            self.node_id,
            self.name,
            self.kmip_port,
            json.dumps(list(self.kmip_endpoints)),
            self.https_port,
            self.version,
            self.started,
            self.last_seen,
            self.heartbeat_seconds,
            json.dumps(self.checks, sort_keys=True),
        )


def _node(row: tuple[Any, ...]) -> NodeRecord:
    return NodeRecord(
        node_id=row[0],
        name=row[1],
        kmip_port=int(row[2]),
        kmip_endpoints=tuple(json.loads(row[3])),
        https_port=int(row[4]),
        version=row[5],
        started=float(row[6]),
        last_seen=float(row[7]),
        heartbeat_seconds=float(row[8]),
        checks=dict(json.loads(row[9])),
    )


class NodeQueries:
    """Mixed into the store; relies on its ``_query`` and ``_write``."""

    _query: Callable[..., Awaitable[list[tuple[Any, ...]]]]
    _write: Callable[..., Awaitable[int]]

    async def put_node(self, record: NodeRecord) -> None:
        """Insert or replace the node's row. Not durable: a heartbeat lost in a power loss
        is written again by the next one."""
        await self._write(
            f"INSERT INTO nodes ({_NODE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
            "kmip_port = excluded.kmip_port, kmip_endpoints = excluded.kmip_endpoints, "
            "https_port = excluded.https_port, version = excluded.version, "
            "started = excluded.started, last_seen = excluded.last_seen, "
            "heartbeat_seconds = excluded.heartbeat_seconds, checks = excluded.checks",
            record.values(),
            durable=False,
        )

    async def nodes(self) -> list[NodeRecord]:
        """Every registered node, by id."""
        rows = await self._query(f"SELECT {_NODE_COLUMNS} FROM nodes ORDER BY id", ())
        return [_node(row) for row in rows]

    async def remove_node(self, node_id: str, started: float) -> bool:
        """Delete the row of the process that started at ``started`` (not one a newer
        process with the same id wrote since). True if it was there."""
        count = await self._write(
            "DELETE FROM nodes WHERE id = ? AND started = ?", (node_id, started)
        )
        return count > 0

    async def forget_nodes(self, not_seen_since: float) -> int:
        """Delete the rows of nodes whose last heartbeat is older; how many."""
        return await self._write(
            "DELETE FROM nodes WHERE last_seen < ?", (not_seen_since,), durable=False
        )
