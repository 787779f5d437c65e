"""kmipd's CA certificate, for "make vCenter trust the KMS" (Reader role: only the token and
health endpoints answer without a credential; the fingerprint lets an administrator compare
what `kmipd ca download --insecure` fetched on first contact)."""

from __future__ import annotations

from typing import Annotated

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from kmipd.api.auth import Principal, Role
from kmipd.api.deps import admin_service, require
from kmipd.transport.tls import fingerprint

router = APIRouter(prefix="/admin/v1", tags=["CA"])

Reader = Annotated[Principal, Depends(require(Role.READER))]


class CaCertificate(BaseModel):
    pem: str
    subject: str
    fingerprint: str = Field(description="SHA-256 of the DER certificate, lower-case hex")
    not_after: int = Field(description="seconds since the epoch")


@router.get("/ca", response_model=CaCertificate)
async def ca_certificate(request: Request, _: Reader) -> CaCertificate:
    pem = admin_service(request).ca_certificate_pem()
    certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    return CaCertificate(
        pem=pem,
        subject=certificate.subject.rfc4514_string(),
        fingerprint=fingerprint(certificate.public_bytes(serialization.Encoding.DER)),
        not_after=int(certificate.not_valid_after_utc.timestamp()),
    )


@router.get(
    "/ca.pem",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/x-pem-file": {}}, "description": "PEM"}},
)
async def ca_certificate_pem(request: Request, _: Reader) -> PlainTextResponse:
    return PlainTextResponse(
        admin_service(request).ca_certificate_pem(), media_type="application/x-pem-file"
    )
