"""Every HTTPS request that may change something (not GET/HEAD/OPTIONS) becomes an audit
record: actor (the API key's service ID, or ``anonymous``), the route's name as the action,
the instance and object from the path (or what the route noted), the result and the error
code. Never the body, the query string or a header: those can hold secrets."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kmipd.audit.log import FAILURE, HTTPS, SUCCESS

READ_ONLY = frozenset(("GET", "HEAD", "OPTIONS"))
_UID_PARAMS = ("uid", "fingerprint", "key_id", "id")
_INSTANCE_PARAMS = ("name", "instance")


class AuditMiddleware:
    """Pure ASGI (Starlette's BaseHTTPMiddleware kept keep-alive connections from closing
    at shutdown). The record is written when the response starts, before any of it is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_ONLY:
            await self.app(scope, receive, send)
            return

        async def send_after_audit(message: Message) -> None:
            if message["type"] == "http.response.start":
                await _record(scope, int(message["status"]))
            await send(message)

        await self.app(scope, receive, send_after_audit)


async def _record(scope: Scope, status: int) -> None:
    route = scope.get("route")
    app: Any = scope.get("app")
    audit = getattr(getattr(app, "state", None), "services", None)
    audit = getattr(audit, "audit", None)
    if audit is None or not isinstance(route, APIRoute):
        return  # no audit trail, or no such route: nothing was changed
    state = scope.get("state", {})
    params = scope.get("path_params", {})
    principal = state.get("principal")
    instance = state.get("audit_instance") or next(
        (params[p] for p in _INSTANCE_PARAMS if p in params), None
    )
    uid = state.get("audit_uid") or next((params[p] for p in _UID_PARAMS if p in params), None)
    ok = status < 400
    await audit.record(
        actor=principal.service_id if principal is not None else "anonymous",
        channel=HTTPS,
        action=route.name,
        instance=instance,
        uid=uid,
        result=SUCCESS if ok else FAILURE,
        reason=None if ok else state.get("error_code") or str(status),
    )


def install(app: FastAPI) -> None:
    app.add_middleware(AuditMiddleware)
