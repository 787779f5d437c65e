"""Request dependencies: the caller's identity and role, and the services behind the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request

from kmipd.api.audit_middleware import record_start
from kmipd.api.auth import ApiAuth, Principal, Role
from kmipd.api.errors import ApiError

if TYPE_CHECKING:
    from kmipd.audit import AuditLog
    from kmipd.service.admin import AdminService


@dataclass
class ApiServices:
    """What the API's routes use; built by the composition root."""

    auth: ApiAuth
    readiness: Callable[[], Awaitable[dict[str, str]]]
    metrics_text: Callable[[], Awaitable[bytes]]
    extra: dict[str, Any]
    admin: AdminService | None = None  # instances, certificates, key inventory
    audit: AuditLog | None = None
    max_body_bytes: int = 1 << 20  # https.max_body_bytes


def services(request: Request) -> ApiServices:
    return request.app.state.services  # type: ignore[no-any-return]


def admin_service(request: Request) -> AdminService:
    admin = services(request).admin
    if admin is None:
        raise ApiError(503, "unavailable", "the management API is not enabled on this server")
    return admin


def audit_log(request: Request) -> AuditLog:
    audit = services(request).audit
    if audit is None:
        raise ApiError(503, "unavailable", "the audit trail is not enabled on this server")
    return audit


def require(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that admits callers with at least ``role``."""

    async def dependency(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token or API key>'")
        principal = await services(request).auth.from_bearer(credential.strip())
        if principal is None:
            raise ApiError(
                401, "unauthorized", "the token or API key is invalid, expired or revoked"
            )
        request.state.principal = principal  # the audit trail names a refused caller too
        if principal.role < role:
            raise ApiError(
                403,
                "forbidden",
                f"this needs the {role.label} role; the caller is a {principal.role.label}",
            )
        request.state.principal = principal
        await record_start(request)
        return principal

    return dependency
