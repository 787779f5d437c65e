"""Reading the TLS client certificate back from an ASGI scope (kmipd.api.tls_peer)."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from kmipd.api.tls_peer import TLS_EXTENSION, client_certificate_der
from tests.support import kmip


def _scope(tls: Any) -> dict[str, Any]:
    return {"type": "http", "extensions": {TLS_EXTENSION: tls}}


def test_the_certificate_comes_back_as_der() -> None:
    certificate, _ = kmip.certificate("client")
    der = certificate.public_bytes(serialization.Encoding.DER)
    scope = _scope({"client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)]})
    assert client_certificate_der(scope) == der


@pytest.mark.parametrize(
    "scope",
    [
        {"type": "http"},  # a server that does not fill in the extension
        _scope(None),
        _scope({"client_cert_chain": []}),  # the client sent no certificate
        _scope({"client_cert_chain": ["not a PEM certificate"]}),
    ],
)
def test_no_certificate_is_none(scope: dict[str, Any]) -> None:
    assert client_certificate_der(scope) is None
