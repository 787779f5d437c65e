"""kmip.legacy_tls_ciphers: the KMIP 1.4 profile's RSA key-exchange suites, off by default."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import KmipdServer, init_server

LEGACY = "AES128-SHA256"


def legacy_only_context(server: KmipdServer) -> ssl.SSLContext:
    context = server.tls_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(LEGACY)
    return context


@pytest.fixture
def stopped_server(tmp_path: Path) -> Iterator[KmipdServer]:
    server = init_server(tmp_path / "data")
    try:
        yield server
    finally:
        server.stop()


def test_legacy_suites_are_refused_by_default(stopped_server: KmipdServer) -> None:
    stopped_server.start()
    with pytest.raises(ssl.SSLError):
        stopped_server.connect(context=legacy_only_context(stopped_server)).close()


def test_legacy_suites_when_enabled(stopped_server: KmipdServer) -> None:
    stopped_server.configure(kmip={"legacy_tls_ciphers": True})
    stopped_server.start()
    with stopped_server.connect(context=legacy_only_context(stopped_server)) as connection:
        assert connection.sock.cipher()[0] == LEGACY
    # Forward-secret suites are still preferred when the client offers them.
    with stopped_server.connect() as connection:
        assert "ECDHE" in connection.sock.cipher()[0] or connection.sock.version() == "TLSv1.3"
