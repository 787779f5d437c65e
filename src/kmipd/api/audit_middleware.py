"""Every HTTPS request that may change something (not GET/HEAD/OPTIONS) becomes an audit
record: actor (the API key's service ID, or ``anonymous``), the route's name as the action,
the instance and object from the path (or what the route noted), the result and the error
code. Never the body, the query string or a header: those can hold secrets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute

from kmipd.audit.log import FAILURE, HTTPS, SUCCESS

READ_ONLY = frozenset(("GET", "HEAD", "OPTIONS"))
_UID_PARAMS = ("uid", "fingerprint", "key_id", "id")
_INSTANCE_PARAMS = ("name", "instance")


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def audit_changes(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.method in READ_ONLY:
            return response
        route = request.scope.get("route")
        audit = getattr(request.app.state.services, "audit", None)
        if audit is None or not isinstance(route, APIRoute):
            return response  # no audit trail, or no such route: nothing was changed
        state = request.state
        params = request.scope.get("path_params", {})
        principal = getattr(state, "principal", None)
        instance = getattr(state, "audit_instance", None) or next(
            (params[p] for p in _INSTANCE_PARAMS if p in params), None
        )
        uid = getattr(state, "audit_uid", None) or next(
            (params[p] for p in _UID_PARAMS if p in params), None
        )
        ok = response.status_code < 400
        await audit.record(
            actor=principal.service_id if principal is not None else "anonymous",
            channel=HTTPS,
            action=route.name,
            instance=instance,
            uid=uid,
            result=SUCCESS if ok else FAILURE,
            reason=None if ok else getattr(state, "error_code", None) or str(response.status_code),
        )
        return response
