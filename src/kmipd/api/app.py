"""The ASGI application of the HTTPS port."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kmipd import __version__, console
from kmipd.api import audit_middleware, errors
from kmipd.api.body_limit import BodyLimitMiddleware
from kmipd.api.deps import ApiServices
from kmipd.api.routes import (
    apikeys,
    audit,
    ca,
    certificates,
    console_views,
    health,
    iam,
    instances,
    keys,
    kmip_http,
    kp_actions,
    kp_aliases,
    kp_keys,
    rewrap,
)


def build_api(services: ApiServices) -> FastAPI:
    app = FastAPI(
        title="kmipd",
        version=__version__,
        description="Management, Key Protect-compatible root keys, IAM tokens and health of a "
        "kmipd KMIP server.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    errors.install(app)
    app.include_router(health.router)
    app.include_router(iam.router)
    app.include_router(apikeys.router)
    # KMIP over HTTPS: authenticated by the TLS client certificate, not a bearer.
    app.include_router(kmip_http.router)
    audit_middleware.install(app)
    # Outermost (added last): a body over the limit is refused before anything else runs.
    app.add_middleware(BodyLimitMiddleware, max_bytes=services.max_body_bytes)
    for router in (
        instances.router,
        rewrap.router,
        certificates.router,
        keys.router,
        audit.router,
        ca.router,
        console_views.router,
    ):
        app.include_router(router)
    # The Key Protect-compatible root key API; its content types follow the settings.
    json_content_type = bool(getattr(services.extra.get("keyprotect"), "json_content_type", False))
    for build_router in (kp_keys.build, kp_actions.build, kp_aliases.build):
        app.include_router(build_router(json_content_type))
    console.mount(app)  # the web console's static files under /ui
    return app


# Paths that take a bearer credential (a token from /identity/token, or an API key).
_PROTECTED_PREFIXES = ("/admin/", "/api/", "/metrics")
_PUBLIC_PATHS: frozenset[str] = frozenset()  # none: only the token and health endpoints

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, made to say what the server really answers: invalid requests are
    400 with kmipd's error body (not FastAPI's 422), and protected paths declare the bearer
    scheme and their 401/403 answers."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["ApiErrorBody"] = _ERROR_SCHEMA
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "an access token from POST /identity/token, or an API key",
    }
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ApiErrorBody"}}}
    for path, operations in schema.get("paths", {}).items():
        protected = path.startswith(_PROTECTED_PREFIXES) and path not in _PUBLIC_PATHS
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if path.startswith("/api/v2/"):  # Key Protect's own error bodies and codes
                operation["security"] = [{"bearer": []}]
                continue
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = {"description": "the request is invalid", "content": error_ref}
            if protected:
                operation["security"] = [{"bearer": []}]
                responses.setdefault(
                    "401", {"description": "no valid credential", "content": error_ref}
                )
                responses.setdefault(
                    "403", {"description": "the caller's role is too low", "content": error_ref}
                )
    app.openapi_schema = schema
    return schema
