"""Helpers for tests of the management API and the admin CLI against a real server."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from tests.support import kmip
from tests.support.server import KmipdServer

SIDE = "admin/v1"


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def https_client(server: KmipdServer) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(server.ca))
    return httpx.Client(base_url=server.https_url, verify=context, timeout=15)


def write_pair(directory: Path, name: str, certificate_pem: str, key_pem: str) -> tuple[Path, Path]:
    """PEM files of a certificate and its key, for ``KmipdServer.tls_context``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert.write_text(certificate_pem)
    key.write_text(key_pem)
    key.chmod(0o600)
    return cert, key


def kmip_works(server: KmipdServer, credentials: tuple[Path, Path]) -> str:
    """Connect with ``credentials``, create an AES key, fetch it; its UID."""
    with server.connect(context=server.tls_context(certificate=credentials)) as connection:
        uid = kmip.created_uid(connection.call(kmip.create_aes()))
        assert len(kmip.key_material(connection.call(kmip.get(uid)))) == 32
        return uid


def kmip_refused(server: KmipdServer, credentials: tuple[Path, Path]) -> bool:
    """True if the server will not serve a client with ``credentials``."""
    try:
        with server.connect(context=server.tls_context(certificate=credentials)) as connection:
            connection.call(kmip.discover_versions())
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    return False
