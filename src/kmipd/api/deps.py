"""Request dependencies: the caller's identity and role, and the services behind the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from kmipd.api.auth import ApiAuth, Principal, Role
from kmipd.api.errors import ApiError


@dataclass
class ApiServices:
    """What the API's routes use; built by the composition root."""

    auth: ApiAuth
    readiness: Callable[[], Awaitable[dict[str, str]]]
    metrics_text: Callable[[], Awaitable[bytes]]
    extra: dict[str, Any]


def services(request: Request) -> ApiServices:
    return request.app.state.services  # type: ignore[no-any-return]


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
        if principal.role < role:
            raise ApiError(
                403,
                "forbidden",
                f"this needs the {role.label} role; the caller is a {principal.role.label}",
            )
        request.state.principal = principal
        return principal

    return dependency
