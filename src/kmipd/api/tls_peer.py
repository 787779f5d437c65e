"""The TLS client certificate of an HTTPS request, for ``POST /kmip``.

uvicorn does not put the TLS session in the ASGI scope. :class:`PeerCertificateProtocol`
(uvicorn's h11 protocol, one per connection) reads the peer's certificate once the handshake
is done and adds the ASGI TLS extension to the scope of every request on that connection:
``scope["extensions"]["tls"]["client_cert_chain"]`` holds the client's certificate as PEM,
or nothing when it sent none (the HTTPS port asks for one but does not require it: the API's
callers authenticate with bearer tokens).

:func:`client_certificate_der` reads it back, the same way whichever server filled it in.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

TLS_EXTENSION = "tls"


class PeerCertificateProtocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app = _WithTlsExtension(self.app, _tls_extension(transport))


class _WithTlsExtension:
    """The connection's application, with the connection's TLS facts in every scope."""

    __slots__ = ("app", "tls")

    def __init__(self, app: ASGIApp, tls: dict[str, Any] | None) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.tls is not None and scope["type"] == "http":
            scope.setdefault("extensions", {})[TLS_EXTENSION] = self.tls
        await self.app(scope, receive, send)


def _tls_extension(transport: asyncio.Transport) -> dict[str, Any] | None:
    """The ASGI TLS extension's fields that kmipd uses; None for a connection without TLS."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }


def client_certificate_der(scope: Scope) -> bytes | None:
    """The DER of the TLS client certificate the request came with, or None."""
    tls = scope.get("extensions", {}).get(TLS_EXTENSION)
    chain = tls.get("client_cert_chain") if isinstance(tls, dict) else None
    if not chain:
        return None
    try:
        return ssl.PEM_cert_to_DER_cert(chain[0])
    except ValueError:
        return None
