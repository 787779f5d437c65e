"""The ASGI application of the HTTPS port."""

from __future__ import annotations

from fastapi import FastAPI

from kmipd import __version__
from kmipd.api import errors
from kmipd.api.deps import ApiServices
from kmipd.api.routes import apikeys, health, iam


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
    errors.install(app)
    app.include_router(health.router)
    app.include_router(iam.router)
    app.include_router(apikeys.router)
    return app
