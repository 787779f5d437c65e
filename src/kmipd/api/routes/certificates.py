"""Allowed client certificates of an instance: pin one (upload its PEM), trust a CA (the
vCenter root CA flow), issue a certificate + private key (the "KMS certificate and private
key" flow), sign vCenter's CSR, list, show, delete.

Writer adds; Manager deletes; Reader lists. A certificate belongs to one instance.
Deleting one refuses it from the next KMIP connection and cuts open connections before their
next request.
"""

from __future__ import annotations

from typing import Annotated

from cryptography import x509
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from kmipd.api.auth import Principal, Role
from kmipd.api.deps import admin_service, require
from kmipd.api.routes._responses import errors
from kmipd.store.records import CertificateRecord

router = APIRouter(prefix="/admin/v1/instances/{name}/certificates", tags=["Certificates"])

Reader = Annotated[Principal, Depends(require(Role.READER))]
Writer = Annotated[Principal, Depends(require(Role.WRITER))]
Manager = Annotated[Principal, Depends(require(Role.MANAGER))]

MAX_PEM = 64 * 1024
DEFAULT_DAYS = 730


class CertificateIn(BaseModel):
    pem: str = Field(min_length=1, max_length=MAX_PEM, description="one PEM certificate")


class IssueIn(BaseModel):
    common_name: str = Field(
        min_length=1, max_length=64, description="the certificate's CN, e.g. the vCenter name"
    )
    days: int = Field(default=DEFAULT_DAYS, ge=1, le=3650)


class CsrIn(BaseModel):
    csr: str = Field(
        min_length=1, max_length=MAX_PEM, description="PEM certificate signing request"
    )
    days: int = Field(default=DEFAULT_DAYS, ge=1, le=3650)


class CertificateOut(BaseModel):
    fingerprint: str = Field(description="SHA-256 of the DER certificate, lower-case hex")
    instance: str
    kind: str = Field(description="'pinned' (this certificate) or 'ca' (what it issues)")
    subject: str
    issuer: str
    not_before: int = Field(description="seconds since the epoch")
    not_after: int = Field(description="seconds since the epoch")
    created: int = Field(description="when it was allowed")
    last_seen: int | None = Field(
        description="last KMIP connection that authenticated with it (to the minute)"
    )
    pem: str


class IssuedCertificate(BaseModel):
    certificate: CertificateOut
    private_key_pem: str = Field(
        repr=False,
        description="the certificate's private key (PKCS#8); shown only in this reply, not kept",
    )


class CertificateList(BaseModel):
    certificates: list[CertificateOut]


def certificate_out(record: CertificateRecord) -> CertificateOut:
    certificate = x509.load_pem_x509_certificate(record.pem.encode("ascii"))
    return CertificateOut(
        fingerprint=record.fingerprint,
        instance=record.instance,
        kind="ca" if record.is_ca else "pinned",
        subject=record.subject,
        issuer=certificate.issuer.rfc4514_string(),
        not_before=int(certificate.not_valid_before_utc.timestamp()),
        not_after=int(certificate.not_valid_after_utc.timestamp()),
        created=record.created,
        last_seen=record.last_seen,
        pem=record.pem,
    )


def _noted(request: Request, record: CertificateRecord) -> CertificateOut:
    request.state.audit_uid = record.fingerprint
    return certificate_out(record)


@router.get("", response_model=CertificateList, responses=errors(404))
async def list_certificates(request: Request, name: str, _: Reader) -> CertificateList:
    records = await admin_service(request).certificates(name)
    return CertificateList(certificates=[certificate_out(r) for r in records])


@router.post("", response_model=CertificateOut, status_code=201, responses=errors(400, 404, 409))
async def upload_certificate(
    request: Request, name: str, body: CertificateIn, _: Writer
) -> CertificateOut:
    """Allow exactly this client certificate (e.g. the one vCenter generated)."""
    return _noted(request, await admin_service(request).pin(name, body.pem))


@router.post(
    "/trusted-ca",
    response_model=CertificateOut,
    status_code=201,
    responses=errors(400, 404, 409),
)
async def trust_ca(request: Request, name: str, body: CertificateIn, _: Writer) -> CertificateOut:
    """Allow every client certificate this CA issued (e.g. vCenter's root CA)."""
    return _noted(request, await admin_service(request).trust_ca(name, body.pem))


@router.post(
    "/issue",
    response_model=IssuedCertificate,
    status_code=201,
    responses=errors(400, 404, 409, 503),
)
async def issue_certificate(
    request: Request, name: str, body: IssueIn, _: Writer
) -> IssuedCertificate:
    """A client certificate and private key signed by kmipd's CA, allowed on the instance,
    for vCenter's "upload a KMS certificate and private key". The key is shown once."""
    issued = await admin_service(request).issue(name, body.common_name, body.days)
    return IssuedCertificate(
        certificate=_noted(request, issued.record), private_key_pem=issued.private_key_pem
    )


@router.post(
    "/sign",
    response_model=CertificateOut,
    status_code=201,
    responses=errors(400, 404, 409, 503),
)
async def sign_csr(request: Request, name: str, body: CsrIn, _: Writer) -> CertificateOut:
    """Sign vCenter's certificate signing request with kmipd's CA and allow the result on
    the instance; upload the returned ``pem`` to vCenter."""
    return _noted(request, await admin_service(request).sign_csr(name, body.csr, body.days))


@router.get("/{fingerprint}", response_model=CertificateOut, responses=errors(404))
async def show_certificate(
    request: Request, name: str, fingerprint: str, _: Reader
) -> CertificateOut:
    return certificate_out(await admin_service(request).certificate(name, fingerprint))


@router.delete("/{fingerprint}", status_code=204, responses=errors(404))
async def delete_certificate(request: Request, name: str, fingerprint: str, _: Manager) -> None:
    """Stop allowing the certificate, at once: new connections with it are refused and
    open ones are cut before their next request."""
    await admin_service(request).remove_certificate(name, fingerprint)
