"""API keys of service IDs (Manager role). A new key's secret is shown once, in the reply."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from kmipd.api.auth import Principal, Role
from kmipd.api.deps import require, services
from kmipd.api.errors import ApiError
from kmipd.store.records import ApiKeyRecord

router = APIRouter(prefix="/admin/v1/apikeys", tags=["API keys"])

Manager = Annotated[Principal, Depends(require(Role.MANAGER))]


class ApiKeyIn(BaseModel):
    service_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._@-]+$")
    role: str = Field(description="Reader, Writer or Manager")
    description: str = Field(default="", max_length=1024)


class ApiKeyOut(BaseModel):
    id: str
    service_id: str
    role: str
    description: str
    created: int
    revoked: int | None


class NewApiKey(ApiKeyOut):
    api_key: str = Field(description="the secret; shown only in this reply", repr=False)


class ApiKeyList(BaseModel):
    api_keys: list[ApiKeyOut]


def _out(record: ApiKeyRecord) -> ApiKeyOut:
    return ApiKeyOut(
        id=record.id,
        service_id=record.service_id,
        role=record.role,
        description=record.description,
        created=record.created,
        revoked=record.revoked,
    )


@router.get("", response_model=ApiKeyList)
async def list_api_keys(request: Request, _: Manager) -> ApiKeyList:
    store = services(request).auth.store
    return ApiKeyList(api_keys=[_out(r) for r in await store.api_keys()])


@router.post("", response_model=NewApiKey, status_code=201)
async def create_api_key(request: Request, body: ApiKeyIn, _: Manager) -> NewApiKey:
    try:
        role = Role.parse(body.role)
    except ValueError as exc:
        raise ApiError(400, "invalid_role", str(exc)) from None
    record, secret = await services(request).auth.create_key(
        body.service_id, role, body.description
    )
    return NewApiKey(**_out(record).model_dump(), api_key=secret)


@router.delete(
    "/{key_id}",
    status_code=204,
    responses={
        404: {
            "description": "no active API key with this id",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ApiErrorBody"}}
            },
        }
    },
)
async def revoke_api_key(request: Request, key_id: str, caller: Manager) -> None:
    auth = services(request).auth
    if not await auth.revoke(key_id):
        raise ApiError(404, "not_found", f"no active API key with id {key_id}")
