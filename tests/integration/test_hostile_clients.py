"""Hostile and broken clients against a real ``kmipd serve``, over real sockets.

Every attack is either refused at the TLS handshake or closed, and while it is going on a
well-behaved client (a fresh connection, handshake + DiscoverVersions or Create + Get) is
served within a second. The deadlines are set small in this module's kmipd.toml so the
waits stay short; each wait is bounded.

Measured figures are printed (``pytest -s``) with the prefix ``[measure]``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kmipd import pki
from kmipd.protocol import ttlv
from kmipd.protocol._generated import ResultReason, ResultStatus, Tag
from kmipd.protocol.tables import VERSIONS
from kmipd.transport import tls
from tests.support import kmip
from tests.support.server import KmipdServer, init_server, read_message

HANDSHAKE_TIMEOUT = 1.0
READ_TIMEOUT = 0.5
IDLE_TIMEOUT = 2.0
MAX_FRAME = 64 * 1024
SERVED_WITHIN = 1.0  # seconds for a fresh, well-behaved client during an attack
SLACK = 1.0  # scheduling slack on a loaded 2-core machine


def measure(what: str, value: float, unit: str = "s") -> None:
    print(f"[measure] {what}: {value:.3f} {unit}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    server = init_server(Path(tmp_path_factory.mktemp("hostile")) / "data")
    server.configure(
        kmip={
            "handshake_timeout": HANDSHAKE_TIMEOUT,
            "read_timeout": READ_TIMEOUT,
            "idle_timeout": IDLE_TIMEOUT,
            "max_connections": 200,
        },
        limits={"max_frame_bytes": MAX_FRAME},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def served(server: KmipdServer, what: str, *, create: bool = False) -> float:
    """A fresh connection is served within SERVED_WITHIN seconds; returns the time taken."""

    def exchange() -> None:
        with server.connect(timeout=5.0) as connection:
            if create:
                uid = kmip.created_uid(connection.call(kmip.create_aes()))
                assert len(kmip.key_material(connection.call(kmip.get(uid)))) == 32
            else:
                kmip.ok(connection.call(kmip.discover_versions()))

    elapsed, _ = kmip.timed(exchange)
    measure(f"good client served during {what}", elapsed)
    assert elapsed < SERVED_WITHIN, f"a good client waited {elapsed:.2f}s during {what}"
    return elapsed


def refused(server: KmipdServer, context: ssl.SSLContext) -> str:
    """The handshake or the first request fails; no KMIP response comes back."""
    try:
        with server.connect(context=context, timeout=5.0) as connection:
            response = connection.call(kmip.discover_versions())
    except (ssl.SSLError, ConnectionError) as exc:
        return type(exc).__name__
    pytest.fail(f"the server answered an unauthenticated client: {response[:16].hex()}")


def client_context(server: KmipdServer, credentials: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server.ca))
    if credentials is not None:
        context.load_cert_chain(*credentials)
    return context


def raw_tls(server: KmipdServer, timeout: float = 5.0) -> ssl.SSLSocket:
    """An authenticated TLS socket of instance default, for sending arbitrary bytes."""
    sock = socket.create_connection((server.host, server.kmip_port), timeout=timeout)
    return server.tls_context().wrap_socket(sock, server_hostname="localhost")


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = {
        key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]
        for key in ("VmRSS", "VmHWM")
    }
    return values["VmRSS"], values["VmHWM"]


# -- certificates ----------------------------------------------------------------------------


def test_no_client_certificate_is_refused(server: KmipdServer) -> None:
    refused(server, client_context(server, None))
    served(server, "a client without a certificate")


def test_certificate_from_an_untrusted_ca_is_refused(server: KmipdServer, tmp_path: Path) -> None:
    other_ca = kmip.certificate("some other CA", ca=True)
    leaf = kmip.certificate("intruder", issuer=other_ca, eku=kmip.CLIENT_AUTH)
    refused(server, client_context(server, kmip.write_credentials(tmp_path, "intruder", *leaf)))
    # The same subject as the real default client, self-signed: still not that client.
    impostor = kmip.certificate("kmipd client default", eku=kmip.CLIENT_AUTH)
    refused(server, client_context(server, kmip.write_credentials(tmp_path, "impostor", *impostor)))
    served(server, "untrusted certificates")


def test_certificates_outside_their_validity_are_refused(
    server: KmipdServer, tmp_path: Path
) -> None:
    """Expired and not-yet-valid, pinned and issued by a trusted CA: all refused."""
    server.add_instance("validity")
    ca = kmip.certificate("CA of validity", ca=True)
    server.add_trusted_ca("validity", ca[0])
    past = (kmip.now() - dt.timedelta(days=10), kmip.now() - dt.timedelta(days=1))
    future = (kmip.now() + dt.timedelta(days=1), kmip.now() + dt.timedelta(days=10))
    contexts = {}
    for when, (start, end) in {"expired": past, "not yet valid": future}.items():
        pinned = kmip.certificate(f"pinned {when}", not_before=start, not_after=end)
        server.pin_certificate("validity", pinned[0])
        issued = kmip.certificate(f"issued {when}", issuer=ca, not_before=start, not_after=end)
        for how, cert in (("pinned", pinned), ("issued by a trusted CA", issued)):
            name = f"{when}-{how}".replace(" ", "-")
            credentials = kmip.write_credentials(tmp_path, name, *cert)
            contexts[f"{when} ({how})"] = client_context(server, credentials)
    # A valid certificate pinned after them: once it works, the trust store holds them all,
    # so a refusal below is their dates, not a stale trust store.
    control = kmip.certificate("valid control")
    server.pin_certificate("validity", control[0])
    wait_until_accepted(
        server, client_context(server, kmip.write_credentials(tmp_path, "control", *control))
    )
    for what, context in contexts.items():
        refused(server, context)
        served(server, f"an {what} certificate")


def test_pinned_self_signed_certificate_without_eku_is_accepted(
    server: KmipdServer, tmp_path: Path
) -> None:
    """vCenter's self-signed client certificate: no CA, no Extended Key Usage at all."""
    server.add_instance("vcenter")
    cert, key = kmip.certificate("kmipClient20250403120000", eku=None, rsa_key=True)
    assert not [e for e in cert.extensions if e.oid.dotted_string == "2.5.29.37"]
    server.pin_certificate("vcenter", cert)
    context = client_context(server, kmip.write_credentials(tmp_path, "vcenter", cert, key))
    elapsed = wait_until_accepted(server, context)
    measure("new pinned certificate accepted after", elapsed)
    with server.connect(context=context) as connection:
        uid = kmip.created_uid(connection.call(kmip.create_aes((1, 1))))
        material = kmip.key_material(connection.call(kmip.get(uid, (1, 1))))
    # Pinned on "vcenter": the object is there, and not in the default instance.
    with server.connect(context=context) as connection:
        assert kmip.key_material(connection.call(kmip.get(uid))) == material
    default_answer = kmip.item(server.call(kmip.get(uid)))
    assert default_answer.result_reason == ResultReason.ITEM_NOT_FOUND


def test_pinned_self_signed_certificate_with_client_auth_is_accepted(
    server: KmipdServer, tmp_path: Path
) -> None:
    server.add_instance("selfsigned")
    cert, key = kmip.certificate("self-signed client", eku=kmip.CLIENT_AUTH)
    server.pin_certificate("selfsigned", cert)
    context = client_context(server, kmip.write_credentials(tmp_path, "ss", cert, key))
    wait_until_accepted(server, context)


def wait_until_accepted(server: KmipdServer, context: ssl.SSLContext, limit: float = 5.0) -> float:
    start = time.perf_counter()
    while True:
        try:
            with server.connect(context=context, timeout=5.0) as connection:
                kmip.ok(connection.call(kmip.discover_versions()))
            return time.perf_counter() - start
        except (ssl.SSLError, ConnectionError):
            if time.perf_counter() - start > limit:
                raise
            time.sleep(0.1)


def test_certificate_issued_by_an_instance_ca_maps_to_that_instance(
    server: KmipdServer, tmp_path: Path
) -> None:
    pinned = server.add_instance("tenant-ca")
    ca = kmip.certificate("VMCA of tenant-ca", ca=True, rsa_key=True)
    server.add_trusted_ca("tenant-ca", ca[0])
    host = kmip.certificate("esx01", issuer=ca, eku=kmip.CLIENT_AUTH)
    no_eku_host = kmip.certificate("esx02", issuer=ca, eku=None)
    context = client_context(server, kmip.write_credentials(tmp_path, "esx01", *host))
    no_eku_context = client_context(server, kmip.write_credentials(tmp_path, "esx02", *no_eku_host))
    wait_until_accepted(server, context)
    with server.connect(context=context) as connection:
        uid = kmip.created_uid(connection.call(kmip.create_aes()))
        material = kmip.key_material(connection.call(kmip.get(uid)))
    # Another certificate of the same CA, and the instance's pinned certificate, see it.
    with server.connect(context=no_eku_context) as connection:
        assert kmip.key_material(connection.call(kmip.get(uid))) == material
    with server.connect(context=client_context(server, pinned)) as connection:
        assert kmip.key_material(connection.call(kmip.get(uid))) == material
    # The default instance does not.
    assert kmip.item(server.call(kmip.get(uid))).result_reason == ResultReason.ITEM_NOT_FOUND


def test_removing_a_pinned_certificate_cuts_access(server: KmipdServer, tmp_path: Path) -> None:
    server.add_instance("removable")
    cert, key = kmip.certificate("removable client", eku=None)
    pinned = server.pin_certificate("removable", cert)
    context = client_context(server, kmip.write_credentials(tmp_path, "removable", cert, key))
    wait_until_accepted(server, context)
    kept = server.connect(context=context)
    try:
        kmip.ok(kept.call(kmip.discover_versions()))
        assert server.remove_certificate(pinned)
        removed_at = time.perf_counter()
        # New connections: refused at once (the instance is looked up per connection).
        refused(server, context)
        measure("new connection refused after removal", time.perf_counter() - removed_at)
        # The open connection is cut at a request after the next trust refresh (~2 s);
        # requests every 0.3 s keep it from idling out first.
        cut = None
        while time.perf_counter() - removed_at < 4.0:
            try:
                kmip.ok(kept.call(kmip.discover_versions()))
            except (ssl.SSLError, ConnectionError):
                cut = time.perf_counter() - removed_at
                break
            time.sleep(0.3)
        assert cut is not None, "an open connection of a removed certificate kept working"
        measure("open connection of a removed certificate cut after", cut)
        # By now the TLS handshake itself refuses it.
        refused(server, context)
        assert "is no longer allowed" in server.log()
    finally:
        kept.close()
    served(server, "a removed certificate")


def test_unmapped_certificate_is_logged_without_its_contents(
    server: KmipdServer, tmp_path: Path
) -> None:
    """Trusted by TLS (issued by the kmipd CA) but pinned on no instance: closed and logged."""
    ca = pki.Issued(
        x509.load_pem_x509_certificate(server.ca.read_bytes()),
        serialization.load_pem_private_key(
            (server.data_dir / "pki" / "ca-key.pem").read_bytes(), None
        ),  # type: ignore[arg-type]
    )
    orphan = pki.issue_client(ca, "orphan client")
    cert_path = tmp_path / "orphan.pem"
    key_path = tmp_path / "orphan-key.pem"
    cert_path.write_bytes(orphan.certificate_pem())
    key_path.write_bytes(orphan.private_key_pem())
    refused(server, client_context(server, (cert_path, key_path)))
    der = orphan.certificate.public_bytes(serialization.Encoding.DER)
    deadline = time.monotonic() + 2.0
    while "not allowed" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [line for line in server.log().splitlines() if "not allowed" in line]
    assert lines and all(" INFO " in line for line in lines), lines
    log = server.log()
    pem_body = b"".join(orphan.certificate_pem().splitlines()[1:-1]).decode()
    for secret in (pem_body[:64], base64.b64encode(der).decode()[:64], der.hex()[:64]):
        assert secret not in log
    assert "orphan client" not in log  # not even the subject: the fingerprint names it
    assert tls.fingerprint(der) in log


# -- transport-level attacks -----------------------------------------------------------------


def test_silent_tcp_connections_do_not_block_others(server: KmipdServer) -> None:
    """PyKMIP CVE-2018-1000872: ``telnet host 5696`` blocked every other client."""
    silent = [
        socket.create_connection((server.host, server.kmip_port), timeout=5) for _ in range(50)
    ]
    try:
        served(server, "50 silent TCP connections", create=True)
        # Each is closed by the handshake deadline.
        start = time.perf_counter()
        for sock in silent:
            assert kmip.closed_by_peer(sock, HANDSHAKE_TIMEOUT + SLACK + 1.0) is not None
        measure("50 silent connections all closed after", time.perf_counter() - start)
    finally:
        for sock in silent:
            sock.close()


def test_half_open_tls_handshakes_do_not_block_others(server: KmipdServer) -> None:
    """A ClientHello that never finishes (first bytes of a TLS record, then silence)."""
    half = []
    for _ in range(30):
        sock = socket.create_connection((server.host, server.kmip_port), timeout=5)
        sock.sendall(bytes.fromhex("16030100f4010000f00303"))  # a truncated ClientHello
        half.append(sock)
    try:
        served(server, "30 half-open handshakes")
        for sock in half:
            assert kmip.closed_by_peer(sock, HANDSHAKE_TIMEOUT + SLACK + 1.0) is not None
    finally:
        for sock in half:
            sock.close()


def test_half_written_message_is_closed_by_the_read_deadline(server: KmipdServer) -> None:
    sock = raw_tls(server)
    try:
        sock.sendall(struct.pack(">II", 0x42007801, 64) + b"\x42\x00\x77")  # 11 of 72 bytes
        served(server, "a half-written message")
        closed = kmip.closed_by_peer(sock, READ_TIMEOUT + SLACK + 1.0)
        assert closed is not None, "a half-written message kept its connection open"
        measure(f"half-written message closed after (read_timeout {READ_TIMEOUT})", closed)
        assert closed < READ_TIMEOUT + SLACK
    finally:
        sock.close()


def test_slow_drip_message_is_closed_by_the_read_deadline(server: KmipdServer) -> None:
    """Slowloris: a byte every 0.1 s never resets the per-message deadline."""
    sock = raw_tls(server)
    message = kmip.discover_versions()
    start = time.perf_counter()
    try:
        for byte in message:
            try:
                sock.sendall(bytes([byte]))
            except (ssl.SSLError, ConnectionError, OSError):
                break
            if time.perf_counter() - start > READ_TIMEOUT + SLACK + 1.0:
                pytest.fail("a slow drip was not closed")
            time.sleep(0.1)
        closed = kmip.closed_by_peer(sock, READ_TIMEOUT + SLACK)
        assert closed is not None
        total = time.perf_counter() - start
        measure("slow drip closed after", total)
        assert total < READ_TIMEOUT + SLACK
    finally:
        sock.close()


def test_4gib_length_header_is_closed_at_once_without_allocating(server: KmipdServer) -> None:
    rss_before, _ = rss_kib(server.pid)
    sockets = [raw_tls(server) for _ in range(20)]
    try:
        times = []
        for sock in sockets:
            sock.sendall(struct.pack(">II", 0x42007801, 0xFFFFFFFF))
            closed = kmip.closed_by_peer(sock, 2.0)
            assert closed is not None, "a 4 GiB length header did not close the connection"
            times.append(closed)
        measure("4 GiB header: slowest close", max(times))
        assert max(times) < 0.5
        served(server, "4 GiB length headers")
    finally:
        for sock in sockets:
            sock.close()
    rss_after, hwm = rss_kib(server.pid)
    measure("server RSS before 20 x 4 GiB headers", rss_before / 1024, "MiB")
    measure("server RSS after", rss_after / 1024, "MiB")
    measure("server peak RSS (VmHWM)", hwm / 1024, "MiB")
    assert rss_after - rss_before < 8 * 1024, "RSS grew by more than 8 MiB"


def test_length_over_the_frame_limit_is_closed(server: KmipdServer) -> None:
    sock = raw_tls(server)
    try:
        # MAX_FRAME - 8 + 8 would fit; one block of 8 more does not.
        sock.sendall(struct.pack(">II", 0x42007801, MAX_FRAME))
        with contextlib.suppress(ssl.SSLError, ConnectionError, OSError):
            sock.sendall(b"\0" * 4096)
        closed = kmip.closed_by_peer(sock, 2.0)
        assert closed is not None and closed < 0.5
    finally:
        sock.close()
    # One that fits exactly is read (and answered: it is not a valid request).
    sock = raw_tls(server)
    try:
        body = b"\0" * (MAX_FRAME - 8)
        sock.sendall(struct.pack(">II", 0x42007801, MAX_FRAME - 8) + body)
        answer = read_message(sock)
        assert_invalid_message(answer)
    finally:
        sock.close()


def assert_invalid_message(answer: bytes) -> None:
    assert answer, "the server closed instead of answering Invalid Message"
    item = kmip.item(answer)
    assert item.result_status == ResultStatus.OPERATION_FAILED
    assert item.result_reason == ResultReason.INVALID_MESSAGE
    assert item.operation is None
    assert "Traceback" not in (item.result_message or "")


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: kmip\r\n\r\n",
        bytes(range(256)),
        struct.pack(">II", 0x42007802, 8) + b"\0" * 8,  # an Integer, not a Structure
        struct.pack(">II", 0x54007801, 8) + b"\0" * 8,  # an extension tag prefix
        struct.pack(">II", 0x42007801, 12) + b"\0" * 12,  # a length not a multiple of 8
    ],
    ids=["http", "bytes", "integer", "extension-tag", "unaligned"],
)
def test_garbage_inside_tls_is_closed(server: KmipdServer, garbage: bytes) -> None:
    sock = raw_tls(server)
    try:
        sock.sendall(garbage)
        closed = kmip.closed_by_peer(sock, 2.0)
        assert closed is not None and closed < 0.5
    finally:
        sock.close()


def test_garbage_instead_of_tls_is_closed(server: KmipdServer) -> None:
    sock = socket.create_connection((server.host, server.kmip_port), timeout=5)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: kmip\r\n\r\n" + bytes(range(256)) * 4)
        closed = kmip.closed_by_peer(sock, 2.0)
        assert closed is not None and closed < 0.5
    finally:
        sock.close()
    served(server, "garbage instead of TLS")


def _bad_bodies() -> list[tuple[str, bytes]]:
    good = kmip.discover_versions()
    header = good[:8]
    # A child that claims to be longer than its parent.
    overrun = bytearray(good)
    struct.pack_into(">I", overrun, 12, len(good))
    # A Boolean that is neither 0 nor 1, alone in a request message.
    boolean = ttlv.encode(
        ttlv.Item(
            Tag.REQUEST_MESSAGE, ttlv.STRUCTURE, [ttlv.Item(Tag.REQUEST_HEADER, ttlv.STRUCTURE, [])]
        )
    )
    nonsense = (
        struct.pack(">II", 0x42007801, 16)
        + struct.pack(">II", 0x42000606, 8)
        + (b"\0" * 7 + b"\x02")
    )
    # Structures nested 4000 deep (the frame limit allows it; the depth limit does not).
    deep = b""
    for _ in range(4000):
        deep = struct.pack(">II", 0x42007801, len(deep)) + deep
    return [
        ("deep-nesting", deep),
        ("zeros", header + b"\0" * (len(good) - 8)),
        ("child-overruns-parent", bytes(overrun)),
        ("empty-header", boolean),
        ("boolean-2", nonsense),
    ]


@pytest.mark.parametrize("name,frame", _bad_bodies(), ids=[n for n, _ in _bad_bodies()])
def test_valid_frame_with_invalid_body_gets_invalid_message(
    server: KmipdServer, name: str, frame: bytes
) -> None:
    """Framing intact: answer Invalid Message and keep the connection in step."""
    sock = raw_tls(server)
    try:
        sock.sendall(frame)
        assert_invalid_message(read_message(sock))
        sock.sendall(kmip.discover_versions())
        kmip.ok(read_message(sock))
    finally:
        sock.close()


# -- TLS -------------------------------------------------------------------------------------


def _version_context(server: KmipdServer, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(server.ca)
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.minimum_version = version
    context.maximum_version = version
    context.load_cert_chain(*server.credentials())
    return context


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", ["TLSv1", "TLSv1_1"])
def test_tls_1_0_and_1_1_are_refused(server: KmipdServer, name: str) -> None:
    before = server.log().count("UNSUPPORTED_PROTOCOL")
    refused(server, _version_context(server, getattr(ssl.TLSVersion, name)))
    deadline = time.monotonic() + 2.0
    while server.log().count("UNSUPPORTED_PROTOCOL") == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.log().count("UNSUPPORTED_PROTOCOL") > before, "refused for another reason"


@pytest.mark.parametrize("name", ["TLSv1_2", "TLSv1_3"])
def test_tls_1_2_and_1_3_work(server: KmipdServer, name: str) -> None:
    with server.connect(context=_version_context(server, getattr(ssl.TLSVersion, name))) as c:
        assert c.sock.version() == name.replace("_", ".").replace("TLSv1.", "TLSv1.")
        assert c.sock.compression() is None
        kmip.ok(c.call(kmip.discover_versions()))


def test_only_forward_secret_aead_suites_are_offered(server: KmipdServer) -> None:
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    tls12 = sorted(
        {
            c["name"]
            for c in probe.get_ciphers()
            if c["protocol"] == "TLSv1.2"
            or c["protocol"] == "TLSv1/SSLv3"
            or c["protocol"] == "SSLv3"
        }
    )
    accepted = []
    for name in tls12:
        context = _version_context(server, ssl.TLSVersion.TLSv1_2)
        try:
            context.set_ciphers(name + ":@SECLEVEL=0")
        except ssl.SSLError:
            continue
        try:
            with server.connect(context=context, timeout=5.0) as connection:
                kmip.ok(connection.call(kmip.discover_versions()))
            accepted.append(name)
        except (ssl.SSLError, ConnectionError):
            pass
    print(f"[measure] TLS 1.2 suites accepted: {accepted} (of {len(tls12)} probed)")
    assert accepted, "no TLS 1.2 suite works"
    for name in accepted:
        assert name.startswith("ECDHE-"), f"{name} is not forward secret"
        assert "GCM" in name or "CHACHA20" in name, f"{name} is not an AEAD suite"
    with server.connect(context=_version_context(server, ssl.TLSVersion.TLSv1_3)) as c:
        cipher = c.sock.cipher()
        assert cipher is not None and cipher[0] in {
            "TLS_AES_256_GCM_SHA384",
            "TLS_AES_128_GCM_SHA256",
            "TLS_CHACHA20_POLY1305_SHA256",
        }


def test_client_renegotiation_is_refused(server: KmipdServer) -> None:
    cert, key = server.credentials()
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"{server.host}:{server.kmip_port}",
            "-tls1_2",
            "-cert",
            str(cert),
            "-key",
            str(key),
            "-CAfile",
            str(server.ca),
        ],
        input=b"R\n",
        capture_output=True,
        timeout=10,
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert "RENEGOTIATING" in output, output[-2000:]
    assert "no renegotiation" in output, output[-2000:]
    served(server, "a renegotiation attempt")


# -- connection lifetime ---------------------------------------------------------------------


def test_idle_connection_is_closed_after_idle_timeout(server: KmipdServer) -> None:
    with server.connect() as connection:
        kmip.ok(connection.call(kmip.discover_versions()))
        closed = kmip.closed_by_peer(connection.sock, IDLE_TIMEOUT + SLACK + 1.0)
    assert closed is not None, "an idle connection was never closed"
    measure(f"idle connection closed after (idle_timeout {IDLE_TIMEOUT})", closed)
    assert IDLE_TIMEOUT - 0.2 < closed < IDLE_TIMEOUT + SLACK


def test_connections_over_the_cap_are_refused_without_blocking_others(
    tmp_path: Path,
) -> None:
    cap = 6
    small = init_server(tmp_path / "capped")
    small.configure(kmip={"max_connections": cap, "idle_timeout": 30.0})
    small.start()
    opened: list[Any] = []
    silent: list[socket.socket] = []
    try:
        # A full table of silent TCP connections (no handshake) does not lock clients out:
        # the oldest unfinished handshake makes room.
        silent = [
            socket.create_connection((small.host, small.kmip_port), timeout=5)
            for _ in range(cap * 3)
        ]
        served(small, f"{cap * 3} silent connections against a cap of {cap}", create=True)
        for sock in silent:
            sock.close()
        time.sleep(0.3)
        for _ in range(cap):
            connection = small.connect()
            kmip.ok(connection.call(kmip.discover_versions()))
            opened.append(connection)
        # Every slot held by an authenticated client: one more is refused at once.
        elapsed, _ = kmip.timed(lambda: refused(small, client_context(small, small.credentials())))
        measure("connection over the cap refused after", elapsed)
        assert elapsed < 1.0
        # The open ones are still served, concurrently.
        errors: list[BaseException] = []

        def use(connection: Any) -> None:
            try:
                kmip.ok(connection.call(kmip.discover_versions()))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=use, args=(c,)) for c in opened]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert not errors
        # A slot freed is a slot usable.
        opened.pop().close()
        time.sleep(0.2)
        served(small, "a full connection table with one slot freed")
        assert "connections open (the limit)" in small.log()
    finally:
        for connection in opened:
            connection.close()
        for sock in silent:
            sock.close()
        small.stop()


def test_protocol_versions_still_served(server: KmipdServer) -> None:
    """After all of the above the server is alive and answers every version it lists."""
    assert server.process is not None and server.process.poll() is None
    payload = kmip.ok(server.call(kmip.discover_versions()))
    listed = {(v.major, v.minor) for v in payload.protocol_versions}
    assert listed == set(VERSIONS)
    log = server.log()
    assert "Traceback" not in log, "a hostile client caused an unhandled exception"
    assert "GET / HTTP" not in log and bytes(range(32, 64)).hex() not in log
