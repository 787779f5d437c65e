"""The key inventory of an instance: every managed object with its VMware tags, state,
type, algorithm, dates and last fetch; filters and paging. Delete one key (Manager).

Deleting a key here is an administrator's "revoke this disk": the key is destroyed whatever
its state (also Active, which KMIP Destroy refuses): its sealed material is removed from the
database for good and it is marked Destroyed (Destroyed Compromised if it was compromised).
Its metadata stays in the inventory. vCenter can no longer fetch it: the VM or disk it
protects cannot be unlocked again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from kmipd.api.auth import Principal, Role
from kmipd.api.deps import admin_service, require
from kmipd.api.routes._responses import errors
from kmipd.protocol._generated import ObjectType, State
from kmipd.service.admin import KeyFilter, KeyInfo, parse_enum

router = APIRouter(prefix="/admin/v1/instances/{name}/keys", tags=["Key inventory"])

Reader = Annotated[Principal, Depends(require(Role.READER))]
Manager = Annotated[Principal, Depends(require(Role.MANAGER))]


class KeyOut(BaseModel):
    uid: str = Field(description="KMIP Unique Identifier (vCenter's key ID)")
    object_type: str = Field(description="e.g. SymmetricKey")
    state: str = Field(description="PreActive, Active, Deactivated, Compromised, Destroyed...")
    algorithm: str | None = Field(description="e.g. AES")
    length: int | None
    name: str | None = Field(description="the KMIP Name attribute, if any")
    tags: dict[str, str] = Field(
        description="VMware tags: x-Name, x-Component, x-Identifier, x-Product, x-Vendor, "
        "x-Product_Version (those present)"
    )
    created: int = Field(description="seconds since the epoch")
    updated: int
    last_fetched: int | None = Field(description="last KMIP Get (to the minute)")
    last_fetched_by: str | None = Field(
        description="SHA-256 fingerprint of the certificate of that Get"
    )
    has_material: bool = Field(description="false once destroyed")


class KeyDetail(KeyOut):
    attributes: dict[str, list[Any]] = Field(
        description="its other attributes (text, numbers, enumerations by name, dates as "
        "seconds); byte strings and digests are not shown"
    )


class KeyList(BaseModel):
    keys: list[KeyOut]
    total: int = Field(description="how many keys match the filters, over all pages")
    limit: int
    offset: int


def key_out(info: KeyInfo) -> KeyOut:
    return KeyOut(
        uid=info.uid,
        object_type=info.object_type,
        state=info.state,
        algorithm=info.algorithm,
        length=info.length,
        name=info.name,
        tags=info.tags,
        created=info.created,
        updated=info.updated,
        last_fetched=info.last_fetched,
        last_fetched_by=info.last_fetched_by,
        has_material=info.has_material,
    )


def key_detail(info: KeyInfo) -> KeyDetail:
    return KeyDetail(**key_out(info).model_dump(), attributes=info.attributes)


def _values(enum: type, texts: list[str] | None, what: str) -> tuple[int, ...] | None:
    if not texts:
        return None
    names = [t for text in texts for t in text.split(",") if t.strip()]
    return tuple(parse_enum(enum, t.strip(), what) for t in names) or None


@router.get("", response_model=KeyList, responses=errors(400, 404))
async def list_keys(
    request: Request,
    name: str,
    _: Reader,
    state: Annotated[
        list[str] | None, Query(description="e.g. Active; repeat or comma-separate for several")
    ] = None,
    object_type: Annotated[list[str] | None, Query(description="e.g. SymmetricKey")] = None,
    x_name: Annotated[str | None, Query(description="x-Name contains (any case)")] = None,
    x_component: Annotated[str | None, Query(description="x-Component contains (any case)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> KeyList:
    wanted = KeyFilter(
        states=_values(State, state, "state"),
        object_types=_values(ObjectType, object_type, "object_type"),
        x_name=x_name,
        x_component=x_component,
        limit=limit,
        offset=offset,
    )
    keys, total = await admin_service(request).keys(name, wanted)
    return KeyList(keys=[key_out(k) for k in keys], total=total, limit=limit, offset=offset)


@router.get("/{uid}", response_model=KeyDetail, responses=errors(404))
async def show_key(request: Request, name: str, uid: str, _: Reader) -> KeyDetail:
    return key_detail(await admin_service(request).key(name, uid))


@router.delete("/{uid}", response_model=KeyDetail, responses=errors(404))
async def delete_key(request: Request, name: str, uid: str, _: Manager) -> KeyDetail:
    """Destroy this key whatever its state: its material is gone for good; it stays listed
    as Destroyed. Returns it as it is now."""
    return key_detail(await admin_service(request).destroy_key(name, uid))
