"""KMIP instances (tenants): create and set the rotation schedule (Writer), list and show
(Reader), delete (Manager)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from kmipd.api.auth import Principal, Role
from kmipd.api.deps import admin_service, require
from kmipd.api.routes._responses import errors
from kmipd.service.admin import MAX_ROTATION_DAYS, InstanceInfo

router = APIRouter(prefix="/admin/v1/instances", tags=["Instances"])

Reader = Annotated[Principal, Depends(require(Role.READER))]
Writer = Annotated[Principal, Depends(require(Role.WRITER))]
Manager = Annotated[Principal, Depends(require(Role.MANAGER))]


class InstanceIn(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="letters, digits, '.', '_' or '-'; unique",
    )
    root_key_id: str | None = Field(
        default=None,
        max_length=128,
        description="an existing root key (in the provider) to bind the instance to; left "
        "out, a new root key is made for it",
    )
    provider: str | None = Field(
        default=None,
        max_length=64,
        description="the root key provider (a [root_key_providers.<name>] of kmipd.toml); "
        "left out: builtin, the built-in keyring",
    )


class InstanceOut(BaseModel):
    name: str
    root_key_id: str
    provider: str = Field(default="builtin", description="the root key provider")
    created: int = Field(description="seconds since the epoch")
    certificates: int = Field(description="allowed client certificates and trusted CAs")
    keys: int = Field(description="managed objects that are not destroyed")
    objects_by_state: dict[str, int]
    rotation_days: float | None = Field(
        default=None, description="its keys are rotated every so many days; null: never"
    )
    last_rotated: float | None = Field(
        default=None, description="when its keys were last rotated (seconds since the epoch)"
    )


class InstancePatch(BaseModel):
    rotation_days: float | None = Field(
        default=None,
        gt=0,
        le=MAX_ROTATION_DAYS,
        description="rotate the instance's keys (and re-wrap its objects) every so many days; "
        "a fraction of a day works; null turns the schedule off. Left out: unchanged",
    )


class NewInstance(InstanceOut):
    root_key_created: bool = Field(description="a new root key was made for this instance")


class InstanceList(BaseModel):
    instances: list[InstanceOut]


def instance_out(info: InstanceInfo) -> InstanceOut:
    return InstanceOut(
        name=info.name,
        root_key_id=info.root_key_id,
        provider=info.provider,
        created=info.created,
        certificates=info.certificates,
        keys=info.keys,
        objects_by_state=info.objects_by_state,
        rotation_days=info.rotation_days,
        last_rotated=info.last_rotated,
    )


@router.get("", response_model=InstanceList)
async def list_instances(request: Request, _: Reader) -> InstanceList:
    infos = await admin_service(request).instances()
    return InstanceList(instances=[instance_out(i) for i in infos])


@router.post("", response_model=NewInstance, status_code=201, responses=errors(400, 409))
async def create_instance(request: Request, body: InstanceIn, _: Writer) -> NewInstance:
    request.state.audit_instance = body.name
    info, created = await admin_service(request).create_instance(
        body.name, body.root_key_id, body.provider
    )
    return NewInstance(**instance_out(info).model_dump(), root_key_created=created)


@router.get("/{name}", response_model=InstanceOut, responses=errors(404))
async def show_instance(request: Request, name: str, _: Reader) -> InstanceOut:
    return instance_out(await admin_service(request).instance(name))


@router.patch("/{name}", response_model=InstanceOut, responses=errors(400, 404))
async def update_instance(
    request: Request, name: str, body: InstancePatch, _: Writer
) -> InstanceOut:
    """Change an instance's settings: its rotation schedule (``rotation_days``)."""
    request.state.audit_instance = name
    service = admin_service(request)
    if "rotation_days" not in body.model_fields_set:
        return instance_out(await service.instance(name))
    return instance_out(await service.set_rotation_days(name, body.rotation_days))


@router.delete("/{name}", status_code=204, responses=errors(404, 409))
async def delete_instance(
    request: Request,
    name: str,
    _: Manager,
    force: Annotated[
        bool,
        Query(description="also when it still has keys: they are destroyed with it, for good"),
    ] = False,
) -> None:
    """Delete an instance, its allowed certificates and its objects. Refused (409) while it
    has keys that are not destroyed, unless ``force=true``. Its root key is kept."""
    await admin_service(request).delete_instance(name, force)
