"""What the web console (and any other client) needs beyond the other routes: who the caller
is, the keys of an instance nobody fetched for N days, and this node's KMIP endpoints with
its health as the server sees it. All Reader.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import time
from typing import Annotated

from cryptography import x509
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from kmipd import config
from kmipd.api.auth import Principal, Role
from kmipd.api.deps import admin_service, require, services
from kmipd.api.errors import ApiError
from kmipd.api.routes._responses import errors
from kmipd.api.routes.keys import KeyOut, key_out
from kmipd.protocol._generated import State
from kmipd.service.admin import KeyFilter, KeyInfo

router = APIRouter(prefix="/admin/v1", tags=["Console"])

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
    name: str = Field(description="this node's host name")
    kmip_port: int
    kmip_endpoints: list[str] = Field(
        description="host:port for vCenter, one per name the server certificate is valid for"
    )
    https_port: int
    ready: bool
    checks: dict[str, str] = Field(description="store and root key providers, as /readyz")
    checked: int = Field(description="when the checks ran (seconds since the epoch)")


class NodeList(BaseModel):
    nodes: list[NodeOut]
    discovery: str = Field(
        description="how the list was made: 'this-node' (nodes do not register themselves "
        "yet; add the other nodes of a cluster to vCenter as well)"
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


def _endpoint(name: str, port: int) -> str:
    try:
        if ipaddress.ip_address(name).version == 6:
            return f"[{name}]:{port}"
    except ValueError:
        pass
    return f"{name}:{port}"


def _certificate_names(settings: config.Settings) -> list[str]:
    """The names and addresses in the server certificate, non-loopback ones first."""
    pem = settings.path(settings.tls.certificate).read_bytes()
    certificate = x509.load_pem_x509_certificate(pem)
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names = [str(n) for n in sans.get_values_for_type(x509.DNSName) if "*" not in str(n)]
    names += [str(a) for a in sans.get_values_for_type(x509.IPAddress)]
    return sorted(names, key=lambda n: (_loopback(n), names.index(n)))


def _loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@router.get("/nodes", response_model=NodeList, responses=errors(503))
async def nodes(request: Request, _: Reader) -> NodeList:
    """The KMIP endpoints to enter in vCenter and the node's health (store, root key
    providers) as this node sees them."""
    api = services(request)
    settings = api.extra.get("settings")
    if not isinstance(settings, config.Settings):
        raise ApiError(503, "unavailable", "this server does not report its endpoints")
    checks = await api.readiness()
    port = settings.kmip.port
    return NodeList(
        nodes=[
            NodeOut(
                name=socket.gethostname(),
                kmip_port=port,
                kmip_endpoints=[_endpoint(n, port) for n in _certificate_names(settings)],
                https_port=settings.https.port,
                ready=all(v == "ok" for v in checks.values()),
                checks=checks,
                checked=int(time.time()),
            )
        ],
        discovery="this-node",
    )
