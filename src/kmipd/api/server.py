"""The HTTPS listener: uvicorn serving the ASGI app inside kmipd's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Generator, Iterable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from kmipd.api.tls_peer import PeerCertificateProtocol


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: kmipd's serve loop owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpsServer:
    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        certificate: Path,
        private_key: Path,
        client_trust: Iterable[bytes] = (),
    ) -> None:
        # The client certificates (PEM) POST /kmip may be called with; see trust_clients.
        self._client_trust = list(client_trust)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            # h11, with each connection's client certificate in the ASGI scope (POST /kmip).
            http=PeerCertificateProtocol,
            ssl_certfile=str(certificate),
            ssl_keyfile=str(private_key),
            ssl_version=ssl.PROTOCOL_TLS_SERVER,
            ssl_ciphers="ECDHE+AESGCM:ECDHE+CHACHA20",
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            limit_concurrency=1000,
            timeout_keep_alive=30,
            # An idle keep-alive client must not hold up a shutdown (asyncio waits up to
            # 30 s for its TLS close_notify).
            timeout_graceful_shutdown=1,
            h11_max_incomplete_event_size=64 * 1024,
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def ports(self) -> list[int]:
        return sorted(
            {s.getsockname()[1] for server in self._server.servers for s in server.sockets}
        )

    async def start(self) -> None:
        config = self._server.config
        if not config.loaded:
            config.load()
        if config.ssl is not None:
            config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
            config.ssl.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
            # Ask for a client certificate without requiring one: KMIP over HTTPS is
            # authenticated by it, the API by bearer tokens. One that is sent must verify.
            config.ssl.verify_mode = ssl.CERT_OPTIONAL
            config.ssl.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            self.trust_clients(self._client_trust)
        self._task = asyncio.get_running_loop().create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what made it stop (e.g. the port is taken)
                raise OSError("the HTTPS server stopped while starting")
            await asyncio.sleep(0.01)

    def trust_clients(self, pems: Iterable[bytes]) -> None:
        """Add client certificates and CAs (PEM) to what the TLS handshake accepts, as the
        KMIP port's trust store does (``VERIFY_X509_PARTIAL_CHAIN`` makes a pinned
        certificate its own anchor). Only ever added to: the running server keeps its one
        context, and OpenSSL cannot take a certificate out of a store. A certificate removed
        later still completes the handshake here; POST /kmip then refuses it (403), as it
        maps every request's certificate to an instance again."""
        self._client_trust = list(pems)
        context = self._server.config.ssl if self._server.config.loaded else None
        data = b"\n".join(self._client_trust)
        if context is not None and data.strip():
            context.load_verify_locations(cadata=data.decode("ascii"))

    async def close(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
