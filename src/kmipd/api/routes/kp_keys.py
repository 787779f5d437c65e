"""Key Protect-compatible keys: create/import, list, key total, get, metadata, versions,
delete, restore and purge (``/api/v2/keys``).

Roles: Reader reads (a standard key's payload needs Writer, as Key Protect's ReaderPlus),
Writer creates and imports, Manager deletes, restores and purges.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kmipd.api.auth import Role
from kmipd.api.keyprotect import (
    ERROR_RESPONSES,
    KEY_TYPE,
    VERSION_TYPE,
    Caller,
    CollectionMetadata,
    KeyCollection,
    KeyProtectService,
    KpError,
    KpRoute,
    caller,
    key_collection,
    key_model,
    response_classes,
    rfc3339,
    wants_representation,
)
from kmipd.keys.keyring import (
    ACTIVE,
    DEACTIVATED,
    PRE_ACTIVE,
    STATES,
    SUSPENDED,
    KeyRecord,
    decode_b64,
)

DEFAULT_STATES = (PRE_ACTIVE, ACTIVE, SUSPENDED, DEACTIVATED)
MAX_LIMIT = 5000
_SORT_FIELDS = {
    "id": lambda r: r.id,
    "name": lambda r: r.name.lower(),
    "state": lambda r: r.state,
    "extractable": lambda r: r.extractable,
    "imported": lambda r: r.imported,
    "creationDate": lambda r: r.created,
    "lastUpdateDate": lambda r: r.last_update,
    "lastRotateDate": lambda r: r.last_rotate,
    "deletionDate": lambda r: r.deletion_date,
    "expirationDate": lambda r: r.expiration,
}


class KeyCreateResource(BaseModel):
    type: str | None = Field(default=None, examples=[KEY_TYPE])
    name: str = Field(min_length=2, max_length=90)
    description: str | None = Field(default=None, max_length=240)
    aliases: list[str] | None = Field(default=None, max_length=5)
    tags: list[str] | None = Field(default=None, max_length=30)
    expirationDate: datetime | None = None
    extractable: bool = Field(default=False, description="false: a root key (the default)")
    payload: str | None = Field(
        default=None,
        description="base64 of the material to import: 16, 24 or 32 bytes for a root key, "
        "up to 7,500 bytes for a standard key; none to have it generated",
        repr=False,
    )
    encryptionAlgorithm: str | None = Field(
        default=None, description="secure import (not supported by kmipd)"
    )
    encryptedNonce: str | None = None
    iv: str | None = None


class KeyCreateBody(BaseModel):
    metadata: CollectionMetadata
    resources: list[KeyCreateResource]


class KeyVersion(BaseModel):
    id: str
    creationDate: str


class VersionsMetadata(CollectionMetadata):
    totalCount: int | None = None


class KeyVersions(BaseModel):
    metadata: VersionsMetadata
    resources: list[KeyVersion]


def parse_states(state: str | None) -> tuple[int, ...]:
    """``state=1,5``; empty (IBM's SDK sends ``state=``) or absent means 0,1,2,3."""
    if state is None or not state.strip():
        return DEFAULT_STATES
    try:
        states = tuple(int(s) for s in state.split(","))
    except ValueError:
        states = (-1,)
    if any(s not in STATES for s in states):
        raise KpError(
            400,
            "INVALID_QUERY_PARAM_ERR",
            "state must be a comma-separated list of 0, 1, 2, 3 and 5",
            "state",
        )
    return states


def _matches(record: KeyRecord, search: str) -> bool:
    text, negate, exact, scopes = search, False, False, set()
    while True:
        if text.startswith("escape:"):
            text = text[len("escape:") :]
            break
        for prefix in ("not:", "exact:", "alias:", "name:"):
            if text.startswith(prefix):
                text = text[len(prefix) :]
                if prefix == "not:":
                    negate = True
                elif prefix == "exact:":
                    exact = True
                else:
                    scopes.add(prefix[:-1])
                break
        else:
            break
    candidates: list[str] = []
    if not scopes or "name" in scopes:
        candidates.append(record.name)
    if not scopes or "alias" in scopes:
        candidates.extend(record.aliases)
    needle = text.lower()
    hit = any(c.lower() == needle if exact else needle in c.lower() for c in candidates)
    if not scopes and record.id == text:
        hit = True
    return hit != negate


def _sorted(records: list[KeyRecord], sort: str | None) -> list[KeyRecord]:
    fields = [f.strip() for f in (sort or "id").split(",") if f.strip()] or ["id"]
    result = sorted(records, key=lambda r: r.id)
    for field in reversed(fields):
        descending = field.startswith("-")
        name = field.lstrip("-")
        getter = _SORT_FIELDS.get(name)
        if getter is None:
            raise KpError(
                400,
                "INVALID_QUERY_PARAM_ERR",
                f"sort: {name!r} is not one of {', '.join(_SORT_FIELDS)}",
                "sort",
            )
        present = [r for r in result if getter(r) is not None]
        absent = [r for r in result if getter(r) is None]
        present.sort(key=getter, reverse=descending)
        result = present + absent
    return result


def _select(
    service: KeyProtectService,
    state: str | None,
    extractable: bool | None,
    search: str | None,
    filter_: str | None,
) -> list[KeyRecord]:
    if filter_:
        raise KpError(
            400, "INVALID_QUERY_PARAM_ERR", "the filter parameter is not supported", "filter"
        )
    states = parse_states(state)
    records = [
        r
        for r in service.keyring.all_keys()
        if r.state in states and (extractable is None or r.extractable == extractable)
    ]
    if search:
        records = [r for r in records if _matches(r, search)]
    return records


def _expiration(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def build(json_content_type: bool) -> APIRouter:
    key_response, _ = response_classes(json_content_type)
    router = APIRouter(prefix="/api/v2", tags=["Key Protect: keys"], route_class=KpRoute)
    common = {
        "response_model_exclude_none": True,
        "response_class": key_response,
        "responses": ERROR_RESPONSES,
    }

    @router.post("/keys", status_code=201, response_model=KeyCollection, **common)
    def create_key(
        body: Annotated[KeyCreateBody, Body()],
        who: Annotated[Caller, caller(Role.WRITER)],
        prefer: Annotated[str | None, Header(alias="Prefer")] = None,
    ) -> KeyCollection:
        """Create a key, or import one with ``payload``; the new key is ``resources[0]``."""
        principal, service = who
        if body.metadata.collectionTotal != len(body.resources):
            raise KpError(
                400,
                "COLLECTION_TOTAL_MISMATCH_ERR",
                "Collection total does not match number of resources",
            )
        if len(body.resources) != 1:
            raise KpError(400, "BAD_BODY_ERR", "One resource is required")
        resource = body.resources[0]
        if resource.encryptionAlgorithm or resource.encryptedNonce or resource.iv:
            raise KpError(
                400,
                "INVALID_FIELD_ERR",
                "secure import (encryptedNonce, iv, encryptionAlgorithm) is not supported; "
                "import the plain payload over TLS",
                "encryptedNonce",
            )
        payload = decode_b64(resource.payload, "payload") if resource.payload else None
        record = service.keyring.create_key(
            resource.name,
            extractable=resource.extractable,
            payload=payload,
            description=resource.description or "",
            aliases=resource.aliases or [],
            tags=resource.tags or [],
            expiration=_expiration(resource.expirationDate),
            created_by=principal.service_id,
        )
        material = None
        if record.extractable and wants_representation(prefer):
            raw = service.keyring.payload(record.id)
            material = None if raw is None else _b64(raw)
        return key_collection(service, [key_model(service, record, time.time(), material)])

    @router.get("/keys", response_model=KeyCollection, **common)
    def get_keys(
        who: Annotated[Caller, caller(Role.READER)],
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 200,
        offset: Annotated[int, Query(ge=0)] = 0,
        state: Annotated[
            str | None, Query(description="comma list of 0,1,2,3,5; empty or absent: 0,1,2,3")
        ] = None,
        extractable: bool | None = None,
        search: Annotated[str | None, Query(max_length=200)] = None,
        sort: Annotated[str | None, Query(max_length=200)] = None,
        filter: Annotated[str | None, Query(description="not supported")] = None,
    ) -> KeyCollection:
        """List keys (never with a payload)."""
        _, service = who
        records = _sorted(_select(service, state, extractable, search, filter), sort)
        now = time.time()
        page = [key_model(service, r, now) for r in records[offset : offset + limit]]
        return key_collection(service, page)

    @router.head(
        "/keys",
        status_code=200,
        response_class=Response,
        responses={
            200: {
                "description": "the number of keys in the Key-Total header",
                "headers": {"Key-Total": {"schema": {"type": "integer"}}},
            },
            **ERROR_RESPONSES,
        },
    )
    def get_key_collection_metadata(
        who: Annotated[Caller, caller(Role.READER)],
        state: str | None = None,
        extractable: bool | None = None,
        filter: str | None = None,
    ) -> Response:
        """The number of keys (``Key-Total``), with the same filters as the list."""
        _, service = who
        total = len(_select(service, state, extractable, None, filter))
        return Response(status_code=200, headers={"Key-Total": str(total)})

    @router.get("/keys/{id}", response_model=KeyCollection, **common)
    def get_key(id: str, who: Annotated[Caller, caller(Role.READER)]) -> KeyCollection:
        """A key, with the payload of a standard key (Active; Writer role or above)."""
        principal, service = who
        record = service.keyring.get(id)
        material = None
        if record.extractable and principal.role >= Role.WRITER:
            raw = service.keyring.payload(record.id)
            material = None if raw is None else _b64(raw)
        return key_collection(service, [key_model(service, record, time.time(), material)])

    @router.get("/keys/{id}/metadata", response_model=KeyCollection, **common)
    def get_key_metadata(id: str, who: Annotated[Caller, caller(Role.READER)]) -> KeyCollection:
        """A key's metadata (never a payload)."""
        _, service = who
        record = service.keyring.get(id)
        return key_collection(service, [key_model(service, record, time.time())])

    @router.get("/keys/{id}/versions", response_model=KeyVersions, **common)
    def get_key_versions(
        id: str,
        who: Annotated[Caller, caller(Role.READER)],
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 200,
        offset: Annotated[int, Query(ge=0)] = 0,
        totalCount: bool = False,
        allKeyStates: bool = False,
    ) -> KeyVersions:
        """A root key's versions, newest first."""
        _, service = who
        record = service.keyring.get(id)
        if record.extractable:
            raise KpError(
                400, "KEY_ROOT_REQ_ERR", "Requested action can only be completed with a root key"
            )
        if record.state != ACTIVE and not allKeyStates:
            raise KpError(
                409,
                "KEY_ACTION_INVALID_STATE_ERR",
                "Key is not in a valid state (use allKeyStates=true for a key that is not active)",
            )
        versions = [
            KeyVersion(id=v.id, creationDate=rfc3339(v.created) or "")
            for v in reversed(record.versions)
        ]
        page = versions[offset : offset + limit]
        return KeyVersions(
            metadata=VersionsMetadata(
                collectionType=VERSION_TYPE,
                collectionTotal=len(page),
                totalCount=len(versions) if totalCount else None,
            ),
            resources=page,
        )

    @router.delete(
        "/keys/{id}",
        response_model=KeyCollection,
        response_model_exclude_none=True,
        response_class=key_response,
        responses={204: {"description": "deleted (no Prefer: return=representation)"}}
        | ERROR_RESPONSES,
    )
    def delete_key(
        id: str,
        who: Annotated[Caller, caller(Role.MANAGER)],
        force: bool = False,
        prefer: Annotated[str | None, Header(alias="Prefer")] = None,
    ) -> KeyCollection | Response:
        """Delete a key: Destroyed at once (every use refused, KMIP instances bound to it stop
        serving); restorable for the restore window, then its material is erased."""
        principal, service = who
        record = service.keyring.delete_key(id, principal.service_id)
        if not wants_representation(prefer):
            return Response(status_code=204)
        return key_collection(service, [key_model(service, record, time.time())])

    @router.delete("/keys/{id}/purge", response_model=KeyCollection, **common)
    def purge_key(id: str, who: Annotated[Caller, caller(Role.MANAGER)]) -> KeyCollection:
        """Erase a deleted key's material and metadata now (after the purge delay)."""
        _, service = who
        record = service.keyring.purge(id)
        return key_collection(service, [key_model(service, record, time.time())])

    @router.post("/keys/{id}/restore", status_code=201, response_model=KeyCollection, **common)
    def restore_key(id: str, who: Annotated[Caller, caller(Role.MANAGER)]) -> KeyCollection:
        """Restore a deleted root key within its restore window."""
        _, service = who
        record = service.keyring.restore(id)
        return key_collection(service, [key_model(service, record, time.time())])

    return router


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
