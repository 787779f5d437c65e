"""Every ``kmipd serve`` registers itself in the store, so that any node can list the
cluster (``GET /admin/v1/nodes``: the endpoints to enter in vCenter, each node's health).

A node writes its row at start and every ``store.node_heartbeat_seconds``: its KMIP
endpoints, its HTTPS port, its version and its readiness checks as it sees them. It deletes
the row when it stops cleanly. A node that missed ``HEARTBEATS_MISSED`` heartbeats (killed,
cut off from the database) is shown as unreachable; rows not written for ``FORGET_AFTER``
are deleted by the other nodes' heartbeats.

The node's id is its host name and KMIP port. Not an id kept in the data directory: the
nodes of a cluster are made by copying the data directory (docs/cluster.md), and several
nodes on one machine share one; two processes cannot listen on the same host and port, and
a restarted node (same host, same port) takes its row back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography import x509

from kmipd import __version__, config
from kmipd.store.database import log_failure
from kmipd.store.node_queries import NodeRecord
from kmipd.store.store import Store

log = logging.getLogger(__name__)

HEARTBEATS_MISSED = 3  # not seen for this many of its heartbeats: unreachable
FORGET_AFTER = 7 * 86400.0  # seconds without a heartbeat before a node's row is deleted
_STOP_TIMEOUT = 5.0  # seconds a stopping node waits for its last beat, then for the delete

READY = "ready"
NOT_READY = "not ready"
UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """Where a node answers."""

    name: str  # host name
    kmip_port: int
    kmip_endpoints: tuple[str, ...]
    https_port: int


def endpoint(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def _loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _names_host(name: str, host: str) -> bool:
    """``name`` (from the certificate) is this host: the same name, or its first label."""
    if not host or _loopback(name):
        return False
    return name.lower() == host.lower() or name.split(".")[0].lower() == host.split(".")[0].lower()


def certificate_names(settings: config.Settings, host: str = "") -> list[str]:
    """The names and addresses in the server certificate: those naming ``host`` first (a
    certificate shared by the nodes of a cluster names them all), loopback ones last."""
    pem = settings.path(settings.tls.certificate).read_bytes()
    certificate = x509.load_pem_x509_certificate(pem)
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names = [str(n) for n in sans.get_values_for_type(x509.DNSName) if "*" not in str(n)]
    names += [str(a) for a in sans.get_values_for_type(x509.IPAddress)]
    return sorted(names, key=lambda n: (_loopback(n), not _names_host(n, host), names.index(n)))


def describe(settings: config.Settings, kmip_port: int, https_port: int) -> NodeAddress:
    """This node's address, from its server certificate and the ports it listens on."""
    host = socket.gethostname()
    return NodeAddress(
        name=host,
        kmip_port=kmip_port,
        kmip_endpoints=tuple(endpoint(n, kmip_port) for n in certificate_names(settings, host)),
        https_port=https_port,
    )


def this_node_id(kmip_port: int) -> str:
    """The id of the node serving KMIP on ``kmip_port`` of this host."""
    return f"{socket.gethostname()}:{kmip_port}"


def state(record: NodeRecord, now: float) -> str:
    """READY, NOT_READY (a check failed), or UNREACHABLE (missed its heartbeats)."""
    if now - record.last_seen > HEARTBEATS_MISSED * record.heartbeat_seconds:
        return UNREACHABLE
    return READY if all(v == "ok" for v in record.checks.values()) else NOT_READY


class NodeRegistry:
    """This node's row in the ``nodes`` table, and the other nodes' rows."""

    def __init__(
        self,
        store: Store,
        node_id: str,
        address: Callable[[], NodeAddress],
        readiness: Callable[[], Awaitable[dict[str, str]]],
        *,
        heartbeat_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._address = address
        self._readiness = readiness
        self._heartbeat = heartbeat_seconds
        self._clock = clock
        self._started = clock()
        self.node_id = node_id
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def current(self) -> NodeRecord:
        """This node as it is now (its checks run now); not written."""
        address = self._address()
        checks = await self._readiness()
        return NodeRecord(
            node_id=self.node_id,
            name=address.name,
            kmip_port=address.kmip_port,
            kmip_endpoints=address.kmip_endpoints,
            https_port=address.https_port,
            version=__version__,
            started=self._started,
            last_seen=self._clock(),
            heartbeat_seconds=self._heartbeat,
            checks=checks,
        )

    async def beat(self) -> NodeRecord:
        """Write this node's row; delete the rows of nodes gone for ``FORGET_AFTER``."""
        record = await self.current()
        await self._store.put_node(record)
        await self._store.forget_nodes(record.last_seen - FORGET_AFTER)
        return record

    async def others(self) -> list[NodeRecord]:
        """The other registered nodes, by id (raises StoreError when the store is down)."""
        return [r for r in await self._store.nodes() if r.node_id != self.node_id]

    async def start(self) -> None:
        """Register at once, then on every heartbeat, in the background (the start of the
        server does not wait for the database). A store outage is logged, never fatal."""
        self._task = asyncio.get_running_loop().create_task(self._beat_forever())

    async def _beat_logged(self) -> None:
        try:
            await self.beat()
        except Exception:  # the next heartbeat tries again
            log_failure(log, "could not write this node's row in the node registry")

    async def _beat_forever(self) -> None:
        while True:
            await self._beat_logged()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._heartbeat)
                return

    async def close(self) -> None:
        """Stop the heartbeat and delete this node's row (the node stops cleanly). A beat
        under way is let finish first: cancelled, its write could land after the delete."""
        if self._task is None:
            return
        task, self._task = self._task, None
        self._stopping.set()
        try:
            await asyncio.wait_for(task, _STOP_TIMEOUT)
            await asyncio.wait_for(
                self._store.remove_node(self.node_id, self._started), _STOP_TIMEOUT
            )
        except TimeoutError:
            log.warning(
                "could not delete this node's row from the node registry within %.0f s: "
                "the other nodes show it unreachable",
                _STOP_TIMEOUT,
            )
        except Exception:  # it turns unreachable, then is forgotten
            log_failure(log, "could not delete this node's row from the node registry")
