"""PyKMIP's own client (``kmip.pie.client.ProxyKmipClient``), unmodified, pointed at a kmipd
test server: the third-party client of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kmip.core.enums import KMIPVersion
from kmip.pie.client import ProxyKmipClient

from tests.support.server import KmipdServer


@contextmanager
def pykmip_client(
    server: KmipdServer, config_dir: Path, version: KMIPVersion, instance: str = "default"
) -> Iterator[ProxyKmipClient]:
    """A connected client with ``instance``'s certificate, speaking ``version``."""
    cert, key = server.credentials(instance)
    config = config_dir / "pykmip.conf"
    config.write_text("[client]\n")  # keeps a stray ~/.pykmip/pykmip.conf out of the test
    client = ProxyKmipClient(
        hostname="127.0.0.1",
        port=server.kmip_port,
        cert=str(cert),
        key=str(key),
        ca=str(server.ca),
        config_file=str(config),
        kmip_version=version,
    )
    with client:
        yield client
