"""Key Protect-compatible key aliases (``/api/v2/keys/{id}/aliases/{alias}``; Writer role).

A key has at most 5 aliases, unique in the instance; any ``{id}`` of the API may be one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from kmipd.api.auth import Role
from kmipd.api.keyprotect import (
    ALIAS_TYPE,
    ERROR_RESPONSES,
    Caller,
    CollectionMetadata,
    KpRoute,
    caller,
    response_classes,
    rfc3339,
)


class KeyAlias(BaseModel):
    keyId: str
    alias: str
    creationDate: str
    createdBy: str


class KeyAliases(BaseModel):
    metadata: CollectionMetadata
    resources: list[KeyAlias]


def build(json_content_type: bool) -> APIRouter:
    key_response, _ = response_classes(json_content_type)
    router = APIRouter(prefix="/api/v2", tags=["Key Protect: aliases"], route_class=KpRoute)

    @router.post(
        "/keys/{id}/aliases/{alias}",
        status_code=201,
        response_model=KeyAliases,
        response_class=key_response,
        responses=ERROR_RESPONSES,
    )
    def create_key_alias(
        id: str, alias: str, who: Annotated[Caller, caller(Role.WRITER)]
    ) -> KeyAliases:
        """Give a key one more alias (up to 5)."""
        principal, service = who
        record = service.keyring.add_alias(id, alias)
        return KeyAliases(
            metadata=CollectionMetadata(collectionType=ALIAS_TYPE, collectionTotal=1),
            resources=[
                KeyAlias(
                    keyId=record.id,
                    alias=alias,
                    creationDate=rfc3339(record.last_update) or "",
                    createdBy=principal.service_id,
                )
            ],
        )

    @router.delete(
        "/keys/{id}/aliases/{alias}",
        status_code=204,
        response_class=Response,
        responses=ERROR_RESPONSES,
    )
    def delete_key_alias(
        id: str, alias: str, who: Annotated[Caller, caller(Role.WRITER)]
    ) -> Response:
        """Remove an alias from a key."""
        who[1].keyring.remove_alias(id, alias)
        return Response(status_code=204)

    return router
