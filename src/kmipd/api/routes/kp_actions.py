"""Key Protect-compatible key actions (``/api/v2/keys/{id}/actions/...``): wrap, unwrap and
rewrap (Reader), rotate (Writer), disable and enable (Manager), set/unset for deletion, and
the deprecated ``POST /keys/{id}?action=...`` form of all of them (and of restore).

A ciphertext is opaque: base64 of ``{"ciphertext","iv","version","handle"}`` where handle is
the key version that wrapped it, so every version unwraps; AES-256-GCM (or 128/192 for an
imported 16/24-byte root key) with the key, the version and the ``aad`` strings bound.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kmipd.api.auth import Principal, Role
from kmipd.api.errors import ApiError
from kmipd.api.keyprotect import (
    ERROR_RESPONSES,
    Caller,
    KeyCollection,
    KeyProtectService,
    KeyVersionRef,
    KpError,
    KpRoute,
    caller,
    key_collection,
    key_model,
    response_classes,
    wants_representation,
)
from kmipd.keys.keyring import decode_b64


class WrapBody(BaseModel):
    plaintext: str | None = Field(
        default=None,
        description="base64 of the DEK; none: kmipd generates a 256-bit DEK",
        repr=False,
    )
    aad: list[str] | None = Field(
        default=None, description="additional authenticated data; give the same to unwrap"
    )


class WrapResult(BaseModel):
    ciphertext: str
    keyVersion: KeyVersionRef
    plaintext: str | None = Field(default=None, description="the DEK kmipd generated", repr=False)


class UnwrapBody(BaseModel):
    ciphertext: str
    aad: list[str] | None = None


class UnwrapResult(BaseModel):
    plaintext: str = Field(repr=False)
    keyVersion: KeyVersionRef = Field(description="the version that wrapped the ciphertext")
    ciphertext: str | None = Field(
        default=None, description="the DEK wrapped under the latest version, if it was older"
    )
    rewrappedKeyVersion: KeyVersionRef | None = None


class RewrapBody(BaseModel):
    ciphertext: str
    aad: list[str] | None = None


class RewrapResult(BaseModel):
    ciphertext: str
    keyVersion: KeyVersionRef
    rewrappedKeyVersion: KeyVersionRef


class RotateBody(BaseModel):
    payload: str | None = Field(
        default=None,
        description="base64 of new material; required for imported root keys",
        repr=False,
    )
    encryptedNonce: str | None = None
    iv: str | None = None
    encryptionAlgorithm: str | None = None


class ActionBody(BaseModel):
    """The body of the deprecated ``?action=`` form: the fields of the action named."""

    plaintext: str | None = Field(default=None, repr=False)
    ciphertext: str | None = None
    aad: list[str] | None = None
    payload: str | None = Field(default=None, repr=False)
    encryptedNonce: str | None = None
    iv: str | None = None
    encryptionAlgorithm: str | None = None


Action = Literal[
    "wrap",
    "unwrap",
    "rewrap",
    "rotate",
    "disable",
    "enable",
    "restore",
    "setKeyForDeletion",
    "unsetKeyForDeletion",
]
_ACTION_ROLE = {
    "wrap": Role.READER,
    "unwrap": Role.READER,
    "rewrap": Role.READER,
    "rotate": Role.WRITER,
    "setKeyForDeletion": Role.WRITER,
    "unsetKeyForDeletion": Role.WRITER,
    "disable": Role.MANAGER,
    "enable": Role.MANAGER,
    "restore": Role.MANAGER,
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _wrap(service: KeyProtectService, id: str, body: WrapBody | ActionBody | None) -> WrapResult:
    plaintext = body.plaintext if body is not None else None
    dek = decode_b64(plaintext, "plaintext") if plaintext else None
    result = service.keyring.wrap_dek(id, dek, (body.aad if body else None) or [])
    return WrapResult(
        ciphertext=result.ciphertext,
        keyVersion=KeyVersionRef(id=result.version),
        plaintext=None if result.plaintext is None else _b64(result.plaintext),
    )


def _ciphertext(body: UnwrapBody | RewrapBody | ActionBody | None) -> tuple[str, list[str]]:
    if body is None:
        raise KpError(400, "NO_BODY_ERR", "Missing body in request")
    if not body.ciphertext:
        raise KpError(400, "INVALID_FIELD_ERR", "ciphertext is required", "ciphertext")
    return body.ciphertext, body.aad or []


def _unwrap(
    service: KeyProtectService, id: str, body: UnwrapBody | ActionBody | None
) -> UnwrapResult:
    ciphertext, aad = _ciphertext(body)
    result = service.keyring.unwrap_dek(id, ciphertext, aad)
    rewrapped = result.rewrapped is not None
    return UnwrapResult(
        plaintext=_b64(result.plaintext),
        keyVersion=KeyVersionRef(id=result.version),
        ciphertext=result.rewrapped,
        rewrappedKeyVersion=KeyVersionRef(id=result.latest) if rewrapped else None,
    )


def _rewrap(
    service: KeyProtectService, id: str, body: RewrapBody | ActionBody | None
) -> RewrapResult:
    ciphertext, aad = _ciphertext(body)
    result = service.keyring.rewrap_dek(id, ciphertext, aad)
    assert result.rewrapped is not None
    return RewrapResult(
        ciphertext=result.rewrapped,
        keyVersion=KeyVersionRef(id=result.version),
        rewrappedKeyVersion=KeyVersionRef(id=result.latest),
    )


def _rotate(
    service: KeyProtectService, id: str, body: RotateBody | ActionBody | None, prefer: str | None
) -> Response | KeyCollection:
    if body is not None and (body.encryptedNonce or body.iv or body.encryptionAlgorithm):
        raise KpError(
            400,
            "INVALID_FIELD_ERR",
            "secure import (encryptedNonce, iv, encryptionAlgorithm) is not supported",
            "encryptedNonce",
        )
    payload = body.payload if body is not None else None
    record = service.keyring.rotate_key(id, decode_b64(payload, "payload") if payload else None)
    if wants_representation(prefer):
        return key_collection(service, [key_model(service, record, time.time())])
    return Response(status_code=204)


def _not_dual_auth(service: KeyProtectService, id: str) -> None:
    service.keyring.get(id)  # 404 first
    raise KpError(
        409,
        "NOT_DUAL_AUTH_ERR",
        "The key is not dual auth enabled and cannot be set for deletion",
    )


def build(json_content_type: bool) -> APIRouter:
    key_response, action_response = response_classes(json_content_type)
    router = APIRouter(prefix="/api/v2", tags=["Key Protect: key actions"], route_class=KpRoute)
    common: dict[str, Any] = {
        "response_model_exclude_none": True,
        "response_class": action_response,
        "responses": ERROR_RESPONSES,
    }
    no_content: dict[str, Any] = {
        "status_code": 204,
        "response_class": Response,
        "responses": ERROR_RESPONSES,
    }

    @router.post("/keys/{id}/actions/wrap", response_model=WrapResult, **common)
    def wrap_key(
        id: str,
        who: Annotated[Caller, caller(Role.READER)],
        body: Annotated[WrapBody | None, Body()] = None,
    ) -> WrapResult:
        """Wrap a DEK (or a new 256-bit DEK) under the root key's latest version."""
        return _wrap(who[1], id, body)

    @router.post("/keys/{id}/actions/unwrap", response_model=UnwrapResult, **common)
    def unwrap_key(
        id: str,
        who: Annotated[Caller, caller(Role.READER)],
        body: Annotated[UnwrapBody | None, Body()] = None,
    ) -> UnwrapResult:
        """Unwrap a ciphertext of any version; an older one also comes back rewrapped."""
        return _unwrap(who[1], id, body)

    @router.post("/keys/{id}/actions/rewrap", response_model=RewrapResult, **common)
    def rewrap_key(
        id: str,
        who: Annotated[Caller, caller(Role.READER)],
        body: Annotated[RewrapBody | None, Body()] = None,
    ) -> RewrapResult:
        """Wrap a ciphertext's DEK again under the latest version (the DEK is not returned)."""
        return _rewrap(who[1], id, body)

    @router.post(
        "/keys/{id}/actions/rotate",
        status_code=204,
        response_model=None,
        response_class=key_response,
        responses={200: {"model": KeyCollection, "description": "Prefer: return=representation"}}
        | ERROR_RESPONSES,
    )
    def rotate_key(
        id: str,
        who: Annotated[Caller, caller(Role.WRITER)],
        body: Annotated[RotateBody | None, Body()] = None,
        prefer: Annotated[str | None, Header(alias="Prefer")] = None,
    ) -> Response | KeyCollection:
        """A new version of a root key; imported keys need a payload."""
        result = _rotate(who[1], id, body, prefer)
        if isinstance(result, KeyCollection):
            return key_response(result.model_dump(exclude_none=True), 200)
        return result

    @router.post("/keys/{id}/actions/disable", **no_content)
    def disable_key(id: str, who: Annotated[Caller, caller(Role.MANAGER)]) -> Response:
        """Suspend a root key: wrap and unwrap are refused, and KMIP instances bound to it
        stop serving, until it is enabled."""
        who[1].keyring.disable(id)
        return Response(status_code=204)

    @router.post("/keys/{id}/actions/enable", **no_content)
    def enable_key(id: str, who: Annotated[Caller, caller(Role.MANAGER)]) -> Response:
        """Make a suspended root key Active again."""
        who[1].keyring.enable(id)
        return Response(status_code=204)

    @router.post("/keys/{id}/actions/setKeyForDeletion", **no_content)
    def set_key_for_deletion(id: str, who: Annotated[Caller, caller(Role.WRITER)]) -> Response:
        """Dual authorization is not offered: always 409 NOT_DUAL_AUTH_ERR."""
        _not_dual_auth(who[1], id)
        return Response(status_code=204)  # pragma: no cover

    @router.post("/keys/{id}/actions/unsetKeyForDeletion", **no_content)
    def unset_key_for_deletion(id: str, who: Annotated[Caller, caller(Role.WRITER)]) -> Response:
        """Dual authorization is not offered: always 409 NOT_DUAL_AUTH_ERR."""
        _not_dual_auth(who[1], id)
        return Response(status_code=204)  # pragma: no cover

    @router.post(
        "/keys/{id}",
        response_model=None,
        response_class=action_response,
        responses={
            200: {
                "model": WrapResult | UnwrapResult | RewrapResult | KeyCollection,
                "description": "wrap, unwrap, rewrap; rotate with Prefer: return=representation",
            },
            201: {"model": KeyCollection, "description": "restore"},
            204: {"description": "rotate, disable, enable"},
        }
        | ERROR_RESPONSES,
        deprecated=True,
    )
    def action_on_key(
        id: str,
        action: Annotated[Action, Query()],
        who: Annotated[Caller, caller(Role.READER)],
        body: Annotated[ActionBody | None, Body()] = None,
        prefer: Annotated[str | None, Header(alias="Prefer")] = None,
    ) -> Response:
        """The deprecated form of the actions: ``POST /keys/{id}?action=<name>``."""
        principal, service = who
        _require(principal, _ACTION_ROLE[action])
        result: BaseModel
        if action == "wrap":
            result = _wrap(service, id, body)
        elif action == "unwrap":
            result = _unwrap(service, id, body)
        elif action == "rewrap":
            result = _rewrap(service, id, body)
        elif action == "rotate":
            rotated = _rotate(service, id, body, prefer)
            if isinstance(rotated, KeyCollection):
                return action_response(rotated.model_dump(exclude_none=True), 200)
            return rotated
        elif action == "disable":
            service.keyring.disable(id)
            return Response(status_code=204)
        elif action == "enable":
            service.keyring.enable(id)
            return Response(status_code=204)
        elif action == "restore":
            record = service.keyring.restore(id)
            restored = key_collection(service, [key_model(service, record, time.time())])
            return action_response(restored.model_dump(exclude_none=True), 201)
        else:
            _not_dual_auth(service, id)
        return action_response(result.model_dump(exclude_none=True), 200)

    return router


def _require(principal: Principal, role: Role) -> None:
    if principal.role < role:
        raise ApiError(
            403,
            "forbidden",
            f"this needs the {role.label} role; the caller is a {principal.role.label}",
        )
