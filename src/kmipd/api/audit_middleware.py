"""Every request to the API (all but health, readiness, metrics and the OpenAPI document)
becomes an audit record, written before the response leaves: actor (the API key's service
ID, or ``anonymous``), the route's name as the action, the instance and object from the path
(or what the route noted), the result and the error code. Never the body, the query string or
a header: those can hold secrets.

A request that can change something is also recorded before its handler runs, with result
``started`` (:func:`record_start`, called once the caller is authenticated): if that record
cannot be written the request is refused with 503 and nothing changes. If the closing record
cannot be written, the response is replaced by a 503 before any of it is sent.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kmipd.api.errors import ApiError, send_error
from kmipd.audit.log import FAILURE, HTTPS, SUCCESS, AuditUnavailable

# Set by POST /kmip (kmipd.api.routes.kmip_http) once the KMIP engine answered.
AUDITED_BY_ENGINE = "audited_by_engine"

READ_ONLY = frozenset(("GET", "HEAD", "OPTIONS"))
STARTED = "started"
NOT_AUDITED = frozenset(("/healthz", "/readyz", "/metrics", "/openapi.json"))
_UID_PARAMS = ("uid", "fingerprint", "key_id", "id")
_INSTANCE_PARAMS = ("name", "instance")
_REFUSAL = "the audit trail cannot be written, so the request was not carried out"


class AuditMiddleware:
    """Pure ASGI (Starlette's BaseHTTPMiddleware kept keep-alive connections from closing
    at shutdown)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in NOT_AUDITED:
            await self.app(scope, receive, send)
            return
        refused = False

        async def send_after_audit(message: Message) -> None:
            nonlocal refused
            if refused:
                return  # the app's body of a response that was replaced
            if message["type"] == "http.response.start":
                try:
                    await _record(scope, int(message["status"]))
                except AuditUnavailable:
                    refused = True
                    await send_error(send, 503, "audit_unavailable", _REFUSAL)
                    return
            await send(message)

        await self.app(scope, receive, send_after_audit)


def _audit(scope: Scope) -> Any:
    app: Any = scope.get("app")
    services = getattr(getattr(app, "state", None), "services", None)
    return getattr(services, "audit", None)


def _fields(scope: Scope) -> dict[str, Any] | None:
    route = scope.get("route")
    if not isinstance(route, APIRoute):
        return None  # no such route: nothing was read or changed
    state = scope.get("state", {})
    params = scope.get("path_params", {})
    principal = state.get("principal")
    instance = state.get("audit_instance") or next(
        (params[p] for p in _INSTANCE_PARAMS if p in params), None
    )
    uid = state.get("audit_uid") or next((params[p] for p in _UID_PARAMS if p in params), None)
    # A route whose caller is not an API key names it itself (POST /kmip: the certificate).
    actor = principal.service_id if principal is not None else state.get("audit_actor")
    return {
        "actor": actor or "anonymous",
        "channel": HTTPS,
        "action": route.name,
        "instance": instance,
        "uid": uid,
    }


async def _record(scope: Scope, status: int) -> None:
    audit, fields = _audit(scope), _fields(scope)
    if audit is None or fields is None:
        return
    state = scope.get("state", {})
    if state.get(AUDITED_BY_ENGINE):
        return  # KMIP over HTTPS: the engine wrote one record per batch item, as on port 5696
    ok = status < 400
    await audit.record(
        **fields,
        result=SUCCESS if ok else FAILURE,
        reason=None if ok else state.get("error_code") or str(status),
    )


async def record_start(request: Request) -> None:
    """Before a handler that can change something runs: its ``started`` record, or 503."""
    scope = request.scope
    if scope["method"] in READ_ONLY:
        return
    audit, fields = _audit(scope), _fields(scope)
    if audit is None or fields is None:
        return
    try:
        await audit.record(**fields, result=STARTED)
    except AuditUnavailable:
        raise ApiError(503, "audit_unavailable", _REFUSAL) from None


def install(app: FastAPI) -> None:
    app.add_middleware(AuditMiddleware)
