"""The IAM-compatible token endpoint: an API key in, a short-lived bearer token out.

Served at ``/identity/token`` (IBM's Python SDK) and ``/oidc/token`` (the Go client and the
older Python client), with IAM's response fields and error shape. Basic authentication and
extra form fields that IAM clients send are ignored.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from kmipd.api.deps import services

router = APIRouter(tags=["IAM"])

APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"


class TokenResponse(BaseModel):
    access_token: str = Field(repr=False)
    refresh_token: str = Field(repr=False)
    token_type: str
    expires_in: int
    expiration: int


class IamError(BaseModel):
    errorCode: str
    errorMessage: str
    context: dict[str, str]


def _iam_error(status: int, code: str, message: str) -> JSONResponse:
    body = {
        "errorCode": code,
        "errorMessage": message,
        "context": {"requestId": secrets.token_hex(8)},
    }
    return JSONResponse(body, status)


async def _token(
    request: Request, grant_type: str | None, apikey: str | None
) -> TokenResponse | JSONResponse:
    if grant_type != APIKEY_GRANT:
        return _iam_error(400, "BXNIM0415E", f"grant_type must be {APIKEY_GRANT}")
    if not apikey:
        return _iam_error(400, "BXNIM0415E", "the apikey form field is missing")
    auth = services(request).auth
    principal = await auth.from_api_key(apikey)
    if principal is None:
        return _iam_error(400, "BXNIM0415E", "Provided API key could not be found")
    token, issued, expires = auth.issue_token(principal)
    return TokenResponse(
        access_token=token,
        refresh_token=secrets.token_urlsafe(16),  # refresh is not offered; a new key exchange is
        token_type="Bearer",
        expires_in=expires - issued,
        expiration=expires,
    )


_RESPONSES = {400: {"model": IamError, "description": "the grant or the API key is invalid"}}


@router.post("/identity/token", response_model=TokenResponse, responses=_RESPONSES)
async def identity_token(
    request: Request,
    grant_type: Annotated[str | None, Form()] = None,
    apikey: Annotated[str | None, Form()] = None,
) -> TokenResponse | JSONResponse:
    return await _token(request, grant_type, apikey)


@router.post("/oidc/token", response_model=TokenResponse, responses=_RESPONSES)
async def oidc_token(
    request: Request,
    grant_type: Annotated[str | None, Form()] = None,
    apikey: Annotated[str | None, Form()] = None,
) -> TokenResponse | JSONResponse:
    return await _token(request, grant_type, apikey)
