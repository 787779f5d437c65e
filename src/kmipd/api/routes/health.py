"""Liveness and readiness (no credential: load balancers and orchestrators probe them), and
Prometheus metrics (Reader role: they name instances and count their keys; give Prometheus
an API key as its bearer credential)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from kmipd.api.auth import Principal, Role
from kmipd.api.deps import require, services

router = APIRouter(tags=["Operations"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and serving HTTP."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request) -> Readiness | JSONResponse:
    """The store and the root key provider answer; 503 with the failing check otherwise."""
    checks = await services(request).readiness()
    ready = all(value == "ok" for value in checks.values())
    body = Readiness(status="ok" if ready else "not ready", checks=checks)
    return body if ready else JSONResponse(body.model_dump(), 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(
    request: Request, _: Annotated[Principal, Depends(require(Role.READER))]
) -> Response:
    """Prometheus text format."""
    return Response(
        await services(request).metrics_text(),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )
