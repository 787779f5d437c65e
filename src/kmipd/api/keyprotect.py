"""What the Key Protect-compatible routes (``/api/v2``) share.

- :class:`KeyProtectService`: the keyring behind the API and this service's instance GUID
  (the ``Bluemix-Instance`` header value, from ``DIR/keyprotect-instance-id``).
- :class:`KpRoute`: the route class of those routers. It reads a JSON body whatever its
  Content-Type (Key Protect clients send vendor types, ``application/json`` or none), and
  turns every refusal into Key Protect's error envelope.
- The pydantic models of the requests and responses, so the OpenAPI document is exact.

Responses carry Key Protect's vendor content types (``application/vnd.ibm.kms.key+json``
for keys, ``application/vnd.ibm.kms.key_action+json`` for actions), as the real service
does; ``[keyprotect] json_content_type = true`` makes them ``application/json``. Errors are
``application/json``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from kmipd.api.auth import Principal, Role
from kmipd.api.deps import require, services
from kmipd.api.errors import ApiError
from kmipd.keys.keyring import DESTROYED, KeyRecord, Keyring, KeyringError

log = logging.getLogger(__name__)

INSTANCE_ID_FILE = "keyprotect-instance-id"
KEY_TYPE = "application/vnd.ibm.kms.key+json"
ERROR_TYPE = "application/vnd.ibm.kms.error+json"
VERSION_TYPE = "application/vnd.ibm.kms.key.version+json"
ALIAS_TYPE = "application/vnd.ibm.kms.alias+json"
ACTION_TYPE = "application/vnd.ibm.kms.key_action+json"
MORE_INFO = "https://cloud.ibm.com/apidocs/key-protect"
PURGE_SCHEDULE = 90 * 86400.0


def load_instance_id(data_dir: Path) -> str:
    """The built-in service's GUID, from DIR/keyprotect-instance-id (made if missing)."""
    path = data_dir / INSTANCE_ID_FILE
    try:
        return str(uuid.UUID(path.read_text(encoding="ascii").strip()))
    except FileNotFoundError:
        instance = str(uuid.uuid4())
        path.write_text(instance + "\n", encoding="ascii")
        return instance


@dataclass
class KeyProtectService:
    keyring: Keyring
    instance_id: str
    json_content_type: bool = False
    region: str = "local"

    def crn(self, key_id: str) -> str:
        return f"crn:v1:kmipd:private:kms:{self.region}:a/kmipd:{self.instance_id}:key:{key_id}"


# --- errors ----------------------------------------------------------------------------------

_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    410: "Gone",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
}


class KpError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class ErrorTarget(BaseModel):
    type: str
    name: str


class ErrorReason(BaseModel):
    code: str
    message: str
    status: int
    moreInfo: str
    target: ErrorTarget | None = None


class ErrorResource(BaseModel):
    errorMsg: str
    reasons: list[ErrorReason]


class CollectionMetadata(BaseModel):
    collectionType: str
    collectionTotal: int


class ErrorCollection(BaseModel):
    metadata: CollectionMetadata
    resources: list[ErrorResource]


def kp_error(
    status: int, code: str, message: str, what: str, field: str | None = None
) -> JSONResponse:
    phrase = _PHRASES.get(status, "Error")
    reason: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status,
        "moreInfo": MORE_INFO,
    }
    if field:
        reason["target"] = {"type": "field", "name": field}
    body = {
        "metadata": {"collectionType": ERROR_TYPE, "collectionTotal": 1},
        "resources": [
            {
                "errorMsg": f"{phrase}: {what}. Please see `reasons` for more details.",
                "reasons": [reason],
            }
        ],
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status, headers=headers)


# Errors are application/json whatever the route's content type ("model" alone would
# document them under the route's type).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "model": ErrorCollection,
        "description": phrase,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorCollection"}}
        },
    }
    for status, phrase in _PHRASES.items()
    if status not in (403, 500)
}

# What each route does, for ``errorMsg`` ("Conflict: Key could not be disabled. ...").
_WHAT = {
    "create_key": "Key could not be created",
    "get_keys": "Collection could not be retrieved",
    "get_key_collection_metadata": "Collection could not be retrieved",
    "get_key": "Key could not be retrieved",
    "get_key_metadata": "Key metadata could not be retrieved",
    "get_key_versions": "Key versions could not be retrieved",
    "delete_key": "Key could not be deleted",
    "purge_key": "Key could not be purged",
    "restore_key": "Key could not be restored",
    "wrap_key": "Key could not be wrapped",
    "unwrap_key": "Key could not be unwrapped",
    "rewrap_key": "Key could not be rewrapped",
    "rotate_key": "Key could not be rotated",
    "disable_key": "Key could not be disabled",
    "enable_key": "Key could not be enabled",
    "set_key_for_deletion": "Key could not be set for deletion",
    "unset_key_for_deletion": "Key could not be unset for deletion",
    "action_on_key": "Key action could not be performed",
    "create_key_alias": "Alias could not be created",
    "delete_key_alias": "Alias could not be deleted",
}


def _validation_error(exc: RequestValidationError, what: str) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = tuple(first.get("loc", ()))
    kind = str(first.get("type", ""))
    if loc[:1] == ("header",):
        name = str(loc[1]) if len(loc) > 1 else "header"
        return kp_error(400, "BAD_REQUEST_ERR", f"the {name} header is required", what)
    if loc[:1] in (("query",), ("path",)):
        name = str(loc[1]) if len(loc) > 1 else "query"
        return kp_error(
            400,
            "INVALID_QUERY_PARAM_ERR",
            f"the {name} parameter is invalid: {first.get('msg', '')}",
            what,
            name,
        )
    if kind == "json_invalid":
        return kp_error(
            400,
            "BAD_BODY_ERR",
            "Invalid body data was passed: Please ensure the data passed had valid formatting "
            "with no invalid characters",
            what,
        )
    if loc == ("body",) and kind == "missing":
        return kp_error(400, "NO_BODY_ERR", "Missing body in request", what)
    fields = [str(p) for p in loc[1:] if not isinstance(p, int)]
    if not fields:
        return kp_error(
            400, "BAD_BODY_ERR", f"Invalid body data was passed: {first.get('msg', '')}", what
        )
    name = ".".join(fields)
    return kp_error(
        400,
        "INVALID_FIELD_ERR",
        f"The field `{name}` is invalid: {first.get('msg', '')}",
        what,
        fields[-1],
    )


class KpRoute(APIRoute):
    """A route of the Key Protect API: JSON whatever the Content-Type; Key Protect errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        what = _WHAT.get(self.name, "Request could not be completed")

        async def route_handler(request: Request) -> Response:
            headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
            scope = dict(request.scope)
            scope["headers"] = [*headers, (b"content-type", b"application/json")]
            request = Request(scope, request.receive)
            try:
                return await handler(request)
            except KpError as exc:
                failure = kp_error(exc.status, exc.code, exc.message, what, exc.field)
                code = exc.code
            except KeyringError as exc:
                failure = kp_error(exc.status, exc.code, exc.message, what, exc.field)
                code = exc.code
            except ApiError as exc:  # no, bad or insufficient credentials (deps.require)
                failure = kp_error(
                    401,
                    "UNAUTHORIZED_ERR",
                    f"The user does not have access to the specified resource: {exc.message}",
                    "The user does not have access to the specified resource",
                )
                code = "UNAUTHORIZED_ERR"
            except RequestValidationError as exc:
                failure = _validation_error(exc, what)
                code = "BAD_REQUEST"
            except HTTPException as exc:  # e.g. a body that is not UTF-8
                code = "BAD_BODY_ERR" if exc.status_code == 400 else "REQUEST_ERR"
                failure = kp_error(exc.status_code, code, str(exc.detail), what)
            request.state.error_code = code  # for the audit trail
            return failure

        return route_handler


# --- dependencies ----------------------------------------------------------------------------


def keyprotect(request: Request) -> KeyProtectService:
    service = services(request).extra.get("keyprotect")
    if not isinstance(service, KeyProtectService):
        raise KpError(503, "SERVICE_UNAVAILABLE_ERR", "the root key service is not enabled", None)
    return service


def _instance(
    request: Request,
    bluemix_instance: Annotated[
        str,
        Header(
            alias="Bluemix-Instance",
            description="the GUID of kmipd's built-in Key Protect instance "
            "(DIR/keyprotect-instance-id)",
        ),
    ],
) -> KeyProtectService:
    service = keyprotect(request)
    if bluemix_instance.strip().lower() != service.instance_id:
        raise KpError(
            404,
            "INSTANCE_NOT_FOUND_ERR",
            "Bluemix-Instance does not name this server's Key Protect instance",
            None,
        )
    return service


def caller(role: Role) -> Any:
    """Dependency: the caller (at least ``role``) of a request to this instance.

    The credential is checked before the ``Bluemix-Instance`` header, as in Key Protect.
    """

    needed = require(role)

    async def dependency(
        principal: Principal = Depends(needed),  # noqa: B008 (a local: no Annotated string)
        service: KeyProtectService = Depends(_instance),  # noqa: B008
    ) -> tuple[Principal, KeyProtectService]:
        return principal, service

    return Depends(dependency)


Caller = tuple[Principal, KeyProtectService]


# --- responses -------------------------------------------------------------------------------


class KpJson(JSONResponse):
    media_type = KEY_TYPE


class KpActionJson(JSONResponse):
    media_type = ACTION_TYPE


def response_classes(json_content_type: bool) -> tuple[type[JSONResponse], type[JSONResponse]]:
    """(for keys, for actions)."""
    if json_content_type:
        return JSONResponse, JSONResponse
    return KpJson, KpActionJson


def rfc3339(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KeyVersionRef(BaseModel):
    id: str
    creationDate: str | None = None


class DualAuthDelete(BaseModel):
    enabled: bool = False


class Key(BaseModel):
    """A key's representation. ``payload`` only in ``GET /keys/{id}`` of a standard key."""

    type: str = KEY_TYPE
    id: str
    name: str
    aliases: list[str]
    description: str | None = None
    tags: list[str]
    state: int = Field(description="1 Active, 2 Suspended, 3 Deactivated, 5 Destroyed")
    expirationDate: str | None = None
    extractable: bool = Field(description="false: a root key; true: a standard key")
    crn: str
    imported: bool
    keyRingID: str = "default"
    creationDate: str
    createdBy: str
    lastUpdateDate: str
    lastRotateDate: str | None = None
    algorithmType: str = "AES"
    keyVersion: KeyVersionRef
    dualAuthDelete: DualAuthDelete
    deleted: bool
    deletionDate: str | None = None
    deletedBy: str | None = None
    restoreExpirationDate: str | None = None
    restoreAllowed: bool | None = None
    purgeAllowed: bool | None = None
    purgeAllowedFrom: str | None = None
    purgeScheduledOn: str | None = None
    payload: str | None = Field(
        default=None, description="base64 of a standard key's material", repr=False
    )


class KeyCollection(BaseModel):
    metadata: CollectionMetadata
    resources: list[Key]


def key_model(
    service: KeyProtectService, record: KeyRecord, now: float, payload: str | None = None
) -> Key:
    rules = service.keyring.rules
    deleted = record.state == DESTROYED and record.deletion_date is not None
    key = Key(
        id=record.id,
        name=record.name,
        aliases=list(record.aliases),
        description=record.description or None,
        tags=list(record.tags),
        state=record.state,
        expirationDate=rfc3339(record.expiration),
        extractable=record.extractable,
        crn=service.crn(record.id),
        imported=record.imported,
        creationDate=rfc3339(record.created) or "",
        createdBy=record.created_by,
        lastUpdateDate=rfc3339(record.last_update) or "",
        lastRotateDate=rfc3339(record.last_rotate),
        keyVersion=KeyVersionRef(id=record.latest.id, creationDate=rfc3339(record.latest.created)),
        dualAuthDelete=DualAuthDelete(),
        deleted=deleted,
        payload=payload,
    )
    if deleted:
        assert record.deletion_date is not None
        restore_until = record.deletion_date + rules.restore_window
        purge_from = record.deletion_date + rules.purge_delay
        key.deletionDate = rfc3339(record.deletion_date)
        key.deletedBy = record.deleted_by
        key.restoreExpirationDate = rfc3339(restore_until)
        key.restoreAllowed = record.is_root and not record.shredded and now < restore_until
        key.purgeAllowed = now >= purge_from
        key.purgeAllowedFrom = rfc3339(purge_from)
        key.purgeScheduledOn = rfc3339(record.deletion_date + PURGE_SCHEDULE)
    return key


def key_collection(service: KeyProtectService, keys: list[Key]) -> KeyCollection:
    return KeyCollection(
        metadata=CollectionMetadata(collectionType=KEY_TYPE, collectionTotal=len(keys)),
        resources=keys,
    )


def wants_representation(prefer: str | None) -> bool:
    return prefer is not None and "return=representation" in prefer.replace(" ", "").lower()
