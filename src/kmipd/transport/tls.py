"""TLS contexts for the KMIP listener, and the client certificate as an identity.

The server requires a client certificate. It verifies it with OpenSSL against one trust store
that holds the kmipd CA, each instance's trusted CAs, and each pinned client certificate
(``VERIFY_X509_PARTIAL_CHAIN`` makes a pinned certificate a trust anchor of its own, so
vCenter's self-signed certificates work). Which instance a verified certificate belongs to is
decided afterwards by :mod:`kmipd.service.identity`.

The clientAuth extended key usage is not required: OpenSSL only checks it when the
certificate has an EKU extension at all, and vCenter's self-signed certificates may have none.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterable
from pathlib import Path

# TLS 1.2 suites with forward secrecy; TLS 1.3 suites are OpenSSL's defaults (all AEAD).
MODERN_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
# KMIP profiles 1.4 name these RSA key-exchange suites as mandatory; vCenter 7.0.3 was seen
# using AES128-SHA256 against a server that offered nothing better. Off unless asked for.
LEGACY_KMIP_CIPHERS = "AES256-SHA256:AES128-SHA256"


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, lower-case hex: how kmipd names a certificate."""
    return hashlib.sha256(der).hexdigest()


def server_context(
    certificate: Path,
    private_key: Path,
    trusted_pems: Iterable[bytes],
    *,
    legacy_ciphers: bool = False,
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    ciphers = MODERN_TLS12_CIPHERS + (":" + LEGACY_KMIP_CIPHERS if legacy_ciphers else "")
    context.set_ciphers(ciphers)
    context.load_cert_chain(certificate, private_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    pems = b"\n".join(trusted_pems)
    if pems.strip():
        context.load_verify_locations(cadata=pems.decode("ascii"))
    return context


def client_context(
    ca: Path, certificate: Path | None = None, private_key: Path | None = None
) -> ssl.SSLContext:
    """A context for kmipd's own clients and tests."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(ca)
    if certificate is not None:
        context.load_cert_chain(certificate, private_key)
    return context
