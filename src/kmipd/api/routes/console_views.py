"""What the web console (and any other client) needs beyond the other routes: who the caller
is, the keys of an instance nobody fetched for N days, and the KMIP endpoints of every node
of the cluster with its health as that node sees it (the node registry). All Reader.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from kmipd.api.auth import Principal, Role
from kmipd.api.deps import admin_service, require, services
from kmipd.api.errors import ApiError
from kmipd.api.routes._responses import errors
from kmipd.api.routes.keys import KeyOut, key_out
from kmipd.protocol._generated import State
from kmipd.service.admin import KeyFilter, KeyInfo
from kmipd.service.node_registry import READY, NodeRegistry, state
from kmipd.store.database import StoreError
from kmipd.store.node_queries import NodeRecord

router = APIRouter(prefix="/admin/v1", tags=["Console"])
log = logging.getLogger(__name__)

Reader = Annotated[Principal, Depends(require(Role.READER))]

DAY = 86400
MAX_STALE_DAYS = 3650
_LIVE_STATES = (State.PRE_ACTIVE, State.ACTIVE, State.DEACTIVATED, State.COMPROMISED)


class SessionOut(BaseModel):
    service_id: str
    role: str = Field(description="Reader, Writer or Manager")
    key_id: str = Field(description="the id of the API key behind the credential")
    keyprotect_instance_id: str | None = Field(
        description="the Bluemix-Instance GUID of the Key Protect-compatible API"
    )


class StaleKeys(BaseModel):
    days: int
    cutoff: int = Field(description="seconds since the epoch: not fetched since then")
    keys: list[KeyOut]
    total: int


class NodeOut(BaseModel):
    id: str = Field(description="host name:KMIP port; stable across restarts")
    this: bool = Field(description="the node that answered this request")
    name: str = Field(description="the node's host name")
    kmip_port: int
    kmip_endpoints: list[str] = Field(
        description="host:port for vCenter, one per name the server certificate is valid for "
        "(names of this host first, loopback last)"
    )
    https_port: int
    version: str = Field(description="the node's kmipd version")
    started: int = Field(description="when the node started (seconds since the epoch)")
    state: str = Field(
        description="'ready', 'not ready' (a check failed) or 'unreachable' (missed 3 "
        "heartbeats: stopped without deregistering, or cut off from the database)"
    )
    ready: bool = Field(description="state is 'ready'")
    checks: dict[str, str] = Field(
        description="store and root key providers, as /readyz on that node: now for this "
        "node, as of last_seen for the others"
    )
    checked: int = Field(description="when the checks ran (seconds since the epoch)")
    last_seen: int = Field(description="the node's last heartbeat (seconds since the epoch)")


class NodeList(BaseModel):
    nodes: list[NodeOut] = Field(description="this node first, then the others by id")
    discovery: str = Field(
        description="how the list was made: 'registry' (every node registered in the "
        "database) or 'this-node' (the registry could not be read: only this node is listed)"
    )


@router.get("/session", response_model=SessionOut)
async def session(request: Request, caller: Reader) -> SessionOut:
    """The caller's service ID and role, so a client shows only what the role may do."""
    keyprotect = services(request).extra.get("keyprotect")
    return SessionOut(
        service_id=caller.service_id,
        role=caller.role.label,
        key_id=caller.key_id,
        keyprotect_instance_id=getattr(keyprotect, "instance_id", None),
    )


def _stale(info: KeyInfo, cutoff: int) -> bool:
    if info.last_fetched is not None:
        return info.last_fetched < cutoff
    return info.created < cutoff  # never fetched: stale once it is old enough


@router.get("/instances/{name}/stale-keys", response_model=StaleKeys, responses=errors(400, 404))
async def stale_keys(
    request: Request,
    name: str,
    _: Reader,
    days: Annotated[
        int, Query(ge=0, le=MAX_STALE_DAYS, description="not fetched for this many days")
    ] = 30,
) -> StaleKeys:
    """Keys that are not destroyed and were not fetched (KMIP Get) for ``days`` days, or
    never and made before then: often keys left behind by VMs deleted in vCenter. Oldest
    fetch first."""
    cutoff = int(time.time()) - days * DAY
    wanted = KeyFilter(states=tuple(int(s) for s in _LIVE_STATES), limit=sys.maxsize)
    keys, _total = await admin_service(request).keys(name, wanted)
    found = sorted(
        (k for k in keys if _stale(k, cutoff)),
        key=lambda k: (k.last_fetched or 0, k.created, k.uid),
    )
    return StaleKeys(days=days, cutoff=cutoff, keys=[key_out(k) for k in found], total=len(found))


def _node_out(record: NodeRecord, *, this: bool, now: float) -> NodeOut:
    seen = state(record, now)
    return NodeOut(
        id=record.node_id,
        this=this,
        name=record.name,
        kmip_port=record.kmip_port,
        kmip_endpoints=list(record.kmip_endpoints),
        https_port=record.https_port,
        version=record.version,
        started=int(record.started),
        state=seen,
        ready=seen == READY,
        checks=record.checks,
        checked=int(record.last_seen),
        last_seen=int(record.last_seen),
    )


@router.get("/nodes", response_model=NodeList, responses=errors(503))
async def nodes(request: Request, _: Reader) -> NodeList:
    """Every node of the cluster (the nodes registered in the database), this one first:
    the KMIP endpoints to enter in vCenter, and each node's health (database, root key
    providers) as that node last saw it. A node that stopped cleanly is not listed; one
    that missed three heartbeats is 'unreachable'."""
    registry = services(request).extra.get("nodes")
    if not isinstance(registry, NodeRegistry):
        raise ApiError(503, "unavailable", "this server does not report its endpoints")
    this = await registry.current()
    listed = [_node_out(this, this=True, now=this.last_seen)]
    try:
        others = await registry.others()
    except StoreError as exc:  # the health of this node still shows what is wrong
        log.warning("GET /admin/v1/nodes lists this node only: %s", exc)
        return NodeList(nodes=listed, discovery="this-node")
    now = time.time()
    listed += [_node_out(other, this=False, now=now) for other in others]
    return NodeList(nodes=listed, discovery="registry")
