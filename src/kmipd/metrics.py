"""Prometheus metrics of one kmipd process, in a registry of its own (not the global one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._kmip_children: dict[tuple[object, object], Any] = {}
        self.kmip_requests = Counter(
            "kmipd_kmip_batch_items",
            "KMIP batch items processed, by operation and result",
            ["operation", "result"],
            registry=self.registry,
        )
        self.kmip_latency = Histogram(
            "kmipd_kmip_message_seconds",
            "Time to answer one KMIP request message",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.open_connections = Gauge(
            "kmipd_kmip_open_connections", "Open KMIP connections", registry=self.registry
        )
        self.handshake_failures = Counter(
            "kmipd_kmip_handshake_failures",
            "Failed KMIP TLS handshakes",
            registry=self.registry,
        )
        self.refused_connections = Counter(
            "kmipd_kmip_refused_connections",
            "KMIP connections closed after the handshake because a connection cap was reached",
            ["cap"],
            registry=self.registry,
        )
        self.keys = Gauge(
            "kmipd_managed_objects",
            "Managed objects per instance",
            ["instance"],
            registry=self.registry,
        )

    def count_refused_connection(self, cap: str) -> None:
        self.refused_connections.labels(cap=cap).inc()

    def count_kmip_item(self, operation: object, status: object) -> None:
        # Once per batch item: keep the labelled child (labels() costs a lock and a lookup).
        key = (operation, status)
        child = self._kmip_children.get(key)
        if child is None:
            child = self.kmip_requests.labels(operation=_name(operation), result=_name(status))
            if len(self._kmip_children) < 10_000:  # operation codes are client input
                self._kmip_children[key] = child
        child.inc()

    async def render(
        self,
        open_connections: Callable[[], int],
        objects_per_instance: Callable[[], Awaitable[dict[str, int]]],
    ) -> bytes:
        self.open_connections.set(open_connections())
        counts = await objects_per_instance()
        self.keys.clear()
        for instance, count in counts.items():
            self.keys.labels(instance=instance).set(count)
        return generate_latest(self.registry)


def _name(value: object) -> str:
    """An enum member's name (``GET``), an unknown number in hex, or ``none``."""
    if value is None:
        return "none"
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name.lower()
    return f"0x{value:08x}" if isinstance(value, int) else "unknown"
