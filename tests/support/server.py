"""A real kmipd for tests: ``kmipd init`` + ``kmipd serve`` in a subprocess, and clients.

Tests talk to it over real TLS sockets on 127.0.0.1. Extra instances (tenants) with their
own client certificates are added through kmipd's store API, as the HTTPS API will.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kmipd import config, pki
from kmipd.app import open_store
from kmipd.keys.keyring import Keyring
from kmipd.service.identity import certificate_subject
from kmipd.store.records import CertificateRecord, InstanceRecord
from kmipd.store.store import Store
from kmipd.transport.tls import fingerprint

STARTUP_TIMEOUT = 30.0

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_message(sock: socket.socket | ssl.SSLSocket) -> bytes:
    """One whole TTLV message from a blocking socket; b"" if the peer closed first."""
    head = _read_exactly(sock, 8)
    if len(head) < 8:
        return b""
    (length,) = struct.unpack(">I", head[4:])
    return head + _read_exactly(sock, length)


def _read_exactly(sock: socket.socket | ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


class KmipConnection:
    """A blocking TLS client connection: send a request, read its response."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock

    def call(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        response = read_message(self.sock)
        if not response:
            raise ConnectionError("the server closed the connection")
        return response

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> KmipConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class KmipdServer:
    data_dir: Path
    kmip_port: int
    https_port: int = 0
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _instances: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    node_name: str = "serve"  # names its log file (several nodes can share a data directory)
    # `kmipd serve --log-level`: the whole suite runs its servers at the most verbose level,
    # so that what the canary scans (test_canary.py, test_no_secrets_in_logs.py) look for
    # would show up in a log if any code logged it. KMIPD_TEST_LOG_LEVEL overrides.
    log_level: str | None = field(
        default_factory=lambda: os.environ.get("KMIPD_TEST_LOG_LEVEL", "debug")
    )

    def another_node(self, name: str = "node-b") -> KmipdServer:
        """A second ``kmipd serve`` on the same setup (the same data directory, so the same
        store, CA, certificates and master key) on ports of its own: with a PostgreSQL
        store, a second node of one cluster. Not started."""
        return KmipdServer(
            data_dir=self.data_dir,
            kmip_port=free_port(),
            https_port=free_port(),
            host=self.host,
            _instances=self._instances,
            node_name=name,
        )

    @property
    def https_url(self) -> str:
        return f"https://{self.host}:{self.https_port}"

    @property
    def admin_api_key(self) -> str:
        return (self.data_dir / "admin-api-key").read_text().strip()

    @property
    def ca(self) -> Path:
        return self.data_dir / "pki" / "ca.pem"

    def credentials(self, instance: str = "default") -> tuple[Path, Path]:
        if instance == "default":
            client = self.data_dir / "clients" / "default"
            return client / "client.pem", client / "client-key.pem"
        return self._instances[instance]

    def tls_context(
        self, instance: str = "default", *, certificate: tuple[Path, Path] | None = None
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        cert, key = certificate if certificate is not None else self.credentials(instance)
        context.load_cert_chain(cert, key)
        return context

    def connect(
        self,
        instance: str = "default",
        *,
        context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> KmipConnection:
        raw = socket.create_connection((self.host, self.kmip_port), timeout=timeout)
        try:
            sock = (context or self.tls_context(instance)).wrap_socket(
                raw, server_hostname="localhost"
            )
        except BaseException:
            raw.close()
            raise
        return KmipConnection(sock)

    def call(self, request: bytes, instance: str = "default") -> bytes:
        with self.connect(instance) as connection:
            return connection.call(request)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def database(self) -> Path:
        """The SQLite file (``sqlite:///kmipd.db`` by default)."""
        return open_store(config.load(self.data_dir)).database.path  # type: ignore[attr-defined]

    def configure(self, **sections: dict[str, Any]) -> None:
        """Change settings in kmipd.toml (takes effect at the next start).

        ``configure(kmip={"read_timeout": 0.5}, limits={"max_frame_bytes": 65536})``.
        """
        settings = config.load(self.data_dir)
        for section, values in sections.items():
            settings = dataclasses.replace(
                settings, **{section: dataclasses.replace(getattr(settings, section), **values)}
            )
        (self.data_dir / config.CONFIG_FILE).write_text(config.render(settings), encoding="utf-8")

    def with_store(self, action: Callable[[Store], Awaitable[T]]) -> T:
        """Run ``action`` on kmipd's store API, as the HTTPS API will (works while serving)."""

        async def run() -> T:
            store = open_store(config.load(self.data_dir))
            await store.open()
            try:
                return await action(store)
            finally:
                await store.close()

        return asyncio.run(run())

    def pin_certificate(self, instance: str, certificate: x509.Certificate) -> str:
        """Allow exactly this client certificate for ``instance``; its fingerprint."""
        return self._add_certificate(instance, certificate, is_ca=False)

    def add_trusted_ca(self, instance: str, ca: x509.Certificate) -> str:
        """Map every client certificate issued by ``ca`` to ``instance``; its fingerprint."""
        return self._add_certificate(instance, ca, is_ca=True)

    def remove_certificate(self, certificate_fingerprint: str) -> bool:
        return self.with_store(lambda store: store.remove_certificate(certificate_fingerprint))

    def _add_certificate(self, instance: str, certificate: x509.Certificate, *, is_ca: bool) -> str:
        der = certificate.public_bytes(serialization.Encoding.DER)
        record = CertificateRecord(
            fingerprint(der),
            instance,
            certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            certificate_subject(certificate),
            is_ca,
            int(time.time()),
        )
        self.with_store(lambda store: store.add_certificate(record))
        return record.fingerprint

    def add_instance(self, name: str) -> tuple[Path, Path]:
        """A new instance with its own root key and an allowed client certificate."""
        settings = config.load(self.data_dir)
        ca = pki.Issued(
            x509.load_pem_x509_certificate(self.ca.read_bytes()),
            serialization.load_pem_private_key(
                (self.data_dir / "pki" / "ca-key.pem").read_bytes(), None
            ),  # type: ignore[arg-type]
        )
        client = pki.issue_client(ca, f"test client {name}")
        directory = self.data_dir / "clients" / name
        pki.write_public(directory / "client.pem", client.certificate_pem())
        pki.write_private(directory / "client-key.pem", client.private_key_pem())
        keyring = Keyring.in_data_dir(self.data_dir, store_url=settings.store.url)
        try:
            root_key_id = keyring.create(f"root key of {name}")
        finally:
            keyring.close()

        async def register() -> None:
            store = open_store(settings)
            await store.open()
            try:
                now = int(time.time())
                await store.add_instance(InstanceRecord(name, root_key_id, now))
                der = client.certificate.public_bytes(serialization.Encoding.DER)
                await store.add_certificate(
                    CertificateRecord(
                        fingerprint(der),
                        name,
                        client.certificate_pem().decode(),
                        certificate_subject(client.certificate),
                        False,
                        now,
                    )
                )
            finally:
                await store.close()

        asyncio.run(register())
        self._instances[name] = (directory / "client.pem", directory / "client-key.pem")
        return self._instances[name]

    def allow_certificate(self, instance: str, name: str = "second") -> tuple[Path, Path]:
        """One more client certificate allowed (pinned) on an existing instance; (cert, key).

        Like an ESXi host that reaches the KMS with a certificate of its own while vCenter
        keeps its own: both see every key of the instance. Registered through the store API,
        as ``add_instance`` does, so it works while the server runs.
        """
        settings = config.load(self.data_dir)
        ca = pki.Issued(
            x509.load_pem_x509_certificate(self.ca.read_bytes()),
            serialization.load_pem_private_key(
                (self.data_dir / "pki" / "ca-key.pem").read_bytes(), None
            ),  # type: ignore[arg-type]
        )
        client = pki.issue_client(ca, f"test client {instance} {name}")
        directory = self.data_dir / "clients" / f"{instance}.{name}"
        pki.write_public(directory / "client.pem", client.certificate_pem())
        pki.write_private(directory / "client-key.pem", client.private_key_pem())

        async def register() -> None:
            store = open_store(settings)
            await store.open()
            try:
                der = client.certificate.public_bytes(serialization.Encoding.DER)
                await store.add_certificate(
                    CertificateRecord(
                        fingerprint(der),
                        instance,
                        client.certificate_pem().decode(),
                        certificate_subject(client.certificate),
                        False,
                        int(time.time()),
                    )
                )
            finally:
                await store.close()

        asyncio.run(register())
        return directory / "client.pem", directory / "client-key.pem"

    def start(self) -> None:
        assert self.process is None
        self.log_path = self.data_dir / f"{self.node_name}.log"
        log = self.log_path.open("ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kmipd",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--kmip-port",
                str(self.kmip_port),
                "--https-port",
                str(self.https_port),
                *(["--log-level", self.log_level] if self.log_level else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kmipd serve exited: {self.log()}")
            try:
                for port in (self.kmip_port, self.https_port):
                    socket.create_connection((self.host, port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"kmipd serve did not start: {self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


def init_server(data_dir: Path, *, store_url: str | None = None) -> KmipdServer:
    """``kmipd init`` a data directory on a free port (not started); ``store_url`` chooses the
    store (default SQLite in the data directory)."""
    port, https_port = free_port(), free_port()
    store = ["--store", store_url] if store_url is not None else []
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kmipd",
            "init",
            "--data-dir",
            str(data_dir),
            "--kmip-port",
            str(port),
            "--https-port",
            str(https_port),
            *store,
        ],
        check=True,
        capture_output=True,
    )
    return KmipdServer(data_dir=data_dir, kmip_port=port, https_port=https_port)
