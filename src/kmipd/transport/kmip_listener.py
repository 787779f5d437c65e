"""The KMIP listener: TCP, then mutual TLS, then one TTLV request and response at a time.

Nothing a client does can block another client: the TLS handshake runs in the connection's
own task under a deadline (PyKMIP's CVE-2018-1000872 was a handshake in the accept path),
each message must arrive whole within a read deadline from its first byte, an idle
connection is closed, and connections over the cap are closed before the handshake. When the
table is full, the oldest connection still in its TLS handshake makes room for a new one: a
flood of silent TCP connections cannot lock out clients that complete their handshake. One
client certificate may hold at most ``max_connections_per_client`` connections: one more is
closed right after its handshake, before any request is read, so a single client (or a stolen
certificate) cannot take the whole table from the others.

Framing errors (an oversized or impossible length) close the connection: after them the
stream cannot be trusted to be in step. Everything past framing is the handler's job.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from asyncio import sslproto
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kmipd.config import KmipSettings
from kmipd.protocol.errors import DecodeError
from kmipd.protocol.framing import FrameReader
from kmipd.protocol.limits import Limits
from kmipd.store.database import log_failure
from kmipd.transport.tls import fingerprint

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
# asyncio gives every TLS connection a receive buffer of SSLProtocol.max_size (256 KiB),
# zero-filled, so resident from the start: 1,500 connections (half-open ones included) held
# 375 MiB. A TLS record carries at most 16 KiB; 32 KiB per read costs nothing measurable.
TLS_READ_BUFFER = 32 * 1024


@dataclass(frozen=True, slots=True)
class Peer:
    """The verified client at the other end of a connection."""

    address: str
    certificate_der: bytes
    certificate_fingerprint: str


class SessionEnded(Exception):
    """Raised by :meth:`Session.handle` to close the connection; the message is logged."""


class Session:
    """What the handler keeps for one connection; ``handle`` answers one request frame."""

    async def handle(self, frame: bytes) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError


# Given the verified peer, a session for its connection, or None to close it.
SessionFactory = Callable[[Peer], Awaitable[Session | None]]


class KmipListener:
    def __init__(
        self,
        settings: KmipSettings,
        tls_context: Callable[[], ssl.SSLContext],
        sessions: SessionFactory,
        limits: Limits,
        on_handshake_failure: Callable[[], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._on_handshake_failure = on_handshake_failure
        # Called with "max_connections" or "max_connections_per_client" for each
        # connection closed because of that cap (for a metric).
        self._on_refused = on_refused
        self._settings = settings
        self._tls_context = tls_context
        self._sessions = sessions
        self._limits = limits
        self._server: asyncio.Server | None = None
        self._active = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # Connections still in their TLS handshake, oldest first (dicts keep insertion order).
        self._handshaking: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        # Open connections per client certificate fingerprint (past the handshake).
        self._per_client: dict[str, int] = {}
        # Connections waiting for the first byte of their next request (drain closes them).
        self._idle: set[asyncio.Task[None]] = set()
        self._draining = False

    @property
    def active_connections(self) -> int:
        return self._active

    @property
    def ports(self) -> list[int]:
        assert self._server is not None
        return sorted({sock.getsockname()[1] for sock in self._server.sockets})

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        _limit_tls_read_buffer()
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.StreamReaderProtocol:
            return _PlainUntilTls(asyncio.StreamReader(limit=READ_CHUNK), self._accept)

        self._server = await loop.create_server(
            protocol,
            host if host is not None else self._settings.host,
            port if port is not None else self._settings.port,
            reuse_address=True,
            # asyncio's default of 100 overflows under a burst of connections (half-open
            # floods included): the kernel then drops SYNs and a good client waits a second
            # or more for the retransmission. The kernel caps this at net.core.somaxconn.
            backlog=max(128, self._settings.max_connections),
        )

    async def drain(self, timeout: float) -> int:
        """A graceful stop: refuse new connections, close idle ones and those still in their
        handshake, and wait up to ``timeout`` seconds for the rest to answer the request they
        are in (each closes after its response). How many were still busy at the deadline."""
        self._draining = True
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            if task in self._idle or task in self._handshaking:
                task.cancel()
        busy = set(self._tasks)
        if not busy:
            return 0
        _, left = await asyncio.wait(busy, timeout=timeout)
        return len(left)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._active >= self._settings.max_connections and not self._evict_handshaking():
            log.warning("connection refused: %d connections open (the limit)", self._active)
            self._refused("max_connections")
            _abort(writer)
            return
        self._active += 1
        self._tasks.add(task)
        address = _address(writer)
        try:
            await self._serve(reader, writer, address)
        except asyncio.CancelledError:
            pass
        except SessionEnded as exc:
            log.info("connection from %s closed: %s", address, exc)
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as exc:
            log.debug("connection from %s ended: %s", address, type(exc).__name__)
        except DecodeError as exc:
            log.info("connection from %s closed: %s", address, exc)
        except Exception:  # a bug must cost one connection, never the listener
            log_failure(log, "connection from %s failed", address)
        finally:
            self._active -= 1
            self._tasks.discard(task)
            self._handshaking.pop(task, None)
            _abort(writer)

    def _evict_handshaking(self) -> bool:
        """Close the oldest connection still in its handshake to make room; False if none."""
        if not self._handshaking:
            return False
        task, writer = next(iter(self._handshaking.items()))
        del self._handshaking[task]
        log.info(
            "connection from %s closed: connection table full, handshake not finished",
            _address(writer),
        )
        _abort(writer)
        task.cancel()
        return True

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str
    ) -> None:
        settings = self._settings
        task = asyncio.current_task()
        assert task is not None
        self._handshaking[task] = writer
        try:
            async with asyncio.timeout(settings.handshake_timeout):
                await writer.start_tls(
                    self._tls_context(), ssl_handshake_timeout=settings.handshake_timeout
                )
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as exc:
            log.info("TLS handshake with %s failed: %s", address, _ssl_reason(exc))
            if self._on_handshake_failure is not None:
                self._on_handshake_failure()
            return
        finally:
            self._handshaking.pop(task, None)
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            log.info("connection from %s closed: no client certificate", address)
            return
        peer = Peer(address, der, fingerprint(der))
        key = peer.certificate_fingerprint
        if self._per_client.get(key, 0) >= settings.max_connections_per_client:
            log.warning(
                "connection from %s closed: its certificate (SHA-256 %s) already has %d "
                "connections open (kmip.max_connections_per_client)",
                address,
                key,
                self._per_client[key],
            )
            self._refused("max_connections_per_client")
            return
        self._per_client[key] = self._per_client.get(key, 0) + 1
        try:
            await self._serve_peer(reader, writer, peer)
        finally:
            if (left := self._per_client[key] - 1) > 0:
                self._per_client[key] = left
            else:
                del self._per_client[key]

    def _refused(self, cap: str) -> None:
        if self._on_refused is not None:
            self._on_refused(cap)

    async def _serve_peer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer
    ) -> None:
        settings = self._settings
        address = peer.address
        session = await self._sessions(peer)
        if session is None:
            # The fingerprint names the certificate for an administrator who wants to pin
            # it; the certificate itself (subject included) is not logged.
            log.info(
                "connection from %s closed: its certificate (SHA-256 %s) is not allowed "
                "for any instance",
                address,
                peer.certificate_fingerprint,
            )
            return
        frames = FrameReader(self._limits)
        while True:
            frame = await self._read_frame(reader, frames)
            if frame is None:
                return
            response = await session.handle(frame)
            writer.write(response)
            if writer.transport.get_write_buffer_size():
                # The client has not taken all of it yet: wait for it, within the deadline
                # (a timer per reply only when the reply did not go out at once).
                async with asyncio.timeout(settings.read_timeout):
                    await writer.drain()
            if self._draining:
                return

    async def _read_frame(self, reader: asyncio.StreamReader, frames: FrameReader) -> bytes | None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        deadline: float | None = None
        while (frame := frames.next_frame()) is None:
            idle = frames.buffered == 0
            if idle:
                if self._draining:
                    return None
                timeout = self._settings.idle_timeout
                self._idle.add(task)  # type: ignore[arg-type]
            else:
                if deadline is None:
                    deadline = loop.time() + self._settings.read_timeout
                timeout = max(0.0, deadline - loop.time())
            try:
                async with asyncio.timeout(timeout):
                    data = await reader.read(READ_CHUNK)
            finally:
                if idle:
                    self._idle.discard(task)  # type: ignore[arg-type]
            if not data:
                return None
            if deadline is None:
                deadline = loop.time() + self._settings.read_timeout
            frames.receive_data(data)
        return frame


class _PlainUntilTls(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, not reading until the TLS handshake starts
    (``loop.start_tls`` resumes reading itself). A client sends its ClientHello at once:
    bytes read before ``start_tls`` would land in the plain stream, and the handshake would
    wait for them until its deadline. (uvloop starts reading after ``connection_made``
    whatever the protocol asked, and does lose that race: kmipd runs on asyncio's loop.)"""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]  # a TCP transport
        super().connection_made(transport)


def _limit_tls_read_buffer() -> None:
    """Lower asyncio's per-connection TLS read buffer (for every asyncio TLS connection of
    the process, the HTTPS port's too; only ever lowered). A no-op on an event loop that
    does not use asyncio.sslproto (uvloop)."""
    protocol = getattr(sslproto, "SSLProtocol", None)
    if protocol is not None and getattr(protocol, "max_size", 0) > TLS_READ_BUFFER:
        protocol.max_size = TLS_READ_BUFFER


def _address(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return type(exc).__name__


def _abort(writer: asyncio.StreamWriter) -> None:
    # abort, not close: close would wait for a peer that never reads to take our last bytes.
    writer.transport.abort()
