"""Rotation of an instance's keys and its re-wrap job: rotate (Writer), the job's progress
(Reader), start or resume it (Writer), retire an unused wrapping key version (Manager)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from kmipd.api.auth import Principal, Role
from kmipd.api.deps import require, services
from kmipd.api.errors import ApiError
from kmipd.api.routes._responses import errors
from kmipd.service.rewrap import RewrapService, RewrapStatus

router = APIRouter(prefix="/admin/v1/instances", tags=["Instances"])

Reader = Annotated[Principal, Depends(require(Role.READER))]
Writer = Annotated[Principal, Depends(require(Role.WRITER))]
Manager = Annotated[Principal, Depends(require(Role.MANAGER))]


def rewrap_service(request: Request) -> RewrapService:
    service = services(request).extra.get("rewrap")
    if not isinstance(service, RewrapService):
        raise ApiError(503, "unavailable", "key rotation is not enabled on this server")
    return service


class RotationOut(BaseModel):
    instance: str
    root_key_id: str
    root_key_version: int = Field(description="the root key's new version (1-based)")
    wrapping_key_version: int = Field(description="the instance wrapping key now sealing")


class WrappingKeyOut(BaseModel):
    version: int
    root_key_version: int | None = Field(description="the root key version that wraps it")
    created: int
    objects: int = Field(description="sealed objects that use it")
    current: bool


class RewrapOut(BaseModel):
    instance: str
    state: str = Field(description="idle (never ran), running or done")
    target_version: int | None
    current_version: int | None
    objects_on_target: int
    objects_remaining: int = Field(description="sealed objects on older wrapping key versions")
    percent: float
    rewrapped: int
    skipped: int
    retries: int = Field(description="writes lost to a concurrent change, and redone")
    passes: int
    started: float | None
    updated: float | None
    finished: float | None
    runner_active: bool
    error: str | None
    wrapping_keys: list[WrappingKeyOut]


def rewrap_out(status: RewrapStatus) -> RewrapOut:
    return RewrapOut(
        instance=status.instance,
        state=status.state,
        target_version=status.target_version,
        current_version=status.current_version,
        objects_on_target=status.objects_on_target,
        objects_remaining=status.objects_remaining,
        percent=round(status.percent, 2),
        rewrapped=status.rewrapped,
        skipped=status.skipped,
        retries=status.retries,
        passes=status.passes,
        started=status.started,
        updated=status.updated,
        finished=status.finished,
        runner_active=status.runner_active,
        error=status.error,
        wrapping_keys=[
            WrappingKeyOut(
                version=v.version,
                root_key_version=v.root_key_version,
                created=v.created,
                objects=v.objects,
                current=v.current,
            )
            for v in status.versions
        ],
    )


@router.post("/{name}/rotate", response_model=RotationOut, responses=errors(404, 409))
async def rotate_instance(request: Request, name: str, _: Writer) -> RotationOut:
    """Rotate the instance's root key: a new wrapping key version, wrapped under the new root
    key version, seals every new object at once; the re-wrap job starts."""
    request.state.audit_instance = name
    rotation = await rewrap_service(request).rotate(name)
    return RotationOut(
        instance=rotation.instance,
        root_key_id=rotation.root_key_id,
        root_key_version=rotation.root_key_version,
        wrapping_key_version=rotation.wrapping_key_version,
    )


@router.get("/{name}/rewrap", response_model=RewrapOut, responses=errors(404))
async def rewrap_status(request: Request, name: str, _: Reader) -> RewrapOut:
    return rewrap_out(await rewrap_service(request).status(name))


@router.post(
    "/{name}/rewrap", response_model=RewrapOut, status_code=202, responses=errors(404, 409)
)
async def start_rewrap(request: Request, name: str, _: Writer) -> RewrapOut:
    """Start the re-wrap job to the newest wrapping key version, or resume it (idempotent)."""
    request.state.audit_instance = name
    service = rewrap_service(request)
    await service.start(name)
    return rewrap_out(await service.status(name))


@router.delete("/{name}/wrapping-keys/{version}", status_code=204, responses=errors(404, 409))
async def retire_wrapping_key(
    request: Request, name: str, version: Annotated[int, Path(ge=1)], _: Manager
) -> None:
    """Retire (delete) an older wrapping key version; refused while objects use it."""
    request.state.audit_instance = name
    await rewrap_service(request).retire(name, version)


class RootKeyStateOut(BaseModel):
    instance: str
    provider: str
    root_key_id: str
    state: str = Field(description="active, deactivated, disabled, deleted or missing")


async def _root_key_action(request: Request, name: str, action: str) -> RootKeyStateOut:
    request.state.audit_instance = name
    instance, state = await rewrap_service(request).root_key_action(name, action)
    request.state.audit_uid = instance.root_key_id
    return RootKeyStateOut(
        instance=instance.name,
        provider=instance.provider,
        root_key_id=instance.root_key_id,
        state=state,
    )


@router.post("/{name}/root-key/disable", response_model=RootKeyStateOut, responses=errors(404, 409))
async def disable_root_key(request: Request, name: str, _: Manager) -> RootKeyStateOut:
    """Disable the instance's root key, in whatever provider holds it: the instance's keys
    are refused at once, until it is enabled again."""
    return await _root_key_action(request, name, "disable")


@router.post("/{name}/root-key/enable", response_model=RootKeyStateOut, responses=errors(404, 409))
async def enable_root_key(request: Request, name: str, _: Manager) -> RootKeyStateOut:
    return await _root_key_action(request, name, "enable")


@router.delete("/{name}/root-key", response_model=RootKeyStateOut, responses=errors(404, 409))
async def delete_root_key(request: Request, name: str, _: Manager) -> RootKeyStateOut:
    """Delete the instance's root key in its provider: crypto-shredding. Every key of the
    instance is refused at once and after restarts; a PKCS#11 token destroys the key for
    good, the built-in keyring keeps it restorable for its restore window."""
    return await _root_key_action(request, name, "delete")
