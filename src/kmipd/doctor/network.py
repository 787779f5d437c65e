"""The ports: is this kmipd listening on them (or another process), and does the KMIP port hold
the conversation vCenter starts with (TLS with a client certificate, DiscoverVersions in KMIP
1.1, Query)?

Blocking sockets: the doctor is a short command, and this is what a client does.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kmipd import config
from kmipd.doctor.report import Finding, fail, ok, warn
from kmipd.initialise import DEFAULT_INSTANCE
from kmipd.protocol import messages
from kmipd.protocol._generated import Operation, QueryFunction, ResultStatus
from kmipd.protocol.errors import DecodeError
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.payloads import DiscoverVersionsRequest, QueryRequest
from kmipd.transport.tls import client_context, fingerprint

TIMEOUT = 10.0
VCENTER_VERSION = (1, 1)  # what vCenter 7 and 8 speak
_HEADER = struct.Struct(">3sBI")  # tag, type, length of a TTLV message


@dataclass(frozen=True, slots=True)
class Port:
    label: str  # "KMIP", "HTTPS"
    setting: str  # "kmip.port"
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.label} port {self.host}:{self.port} ({self.setting})"


def check(settings: config.Settings) -> list[Finding]:
    server = _certificate_fingerprint(settings.path(settings.tls.certificate))
    credentials = client_credentials(settings.data_dir)
    kmip = Port("KMIP", "kmip.port", _local(settings.kmip.host), settings.kmip.port)
    https = Port("HTTPS", "https.port", _local(settings.https.host), settings.https.port)
    findings: list[Finding] = []
    kmip_ok = _identify(kmip, server, settings, credentials, findings)
    _identify(https, server, settings, None, findings)
    if not kmip_ok:
        return findings
    if credentials is None:
        findings.append(
            warn(
                f"no client certificate in {settings.data_dir / 'clients'}/<instance>/: the "
                "KMIP conversation (DiscoverVersions, Query) was not tried",
                f"kmipd cert issue INSTANCE --common-name doctor --cert-out "
                f"{settings.data_dir}/clients/INSTANCE/client.pem --key-out "
                f"{settings.data_dir}/clients/INSTANCE/client-key.pem",
            )
        )
        return findings
    findings.append(_converse(kmip, settings, credentials))
    return findings


def client_credentials(data_dir: Path) -> tuple[Path, Path] | None:
    """DIR/clients/<instance>/client.pem and client-key.pem (``kmipd init`` makes them for
    ``default``): that instance's first, else the first instance (by name) that has both."""
    clients = data_dir / "clients"
    if not clients.is_dir():
        return None
    names = sorted(p.name for p in clients.iterdir() if p.is_dir())
    if DEFAULT_INSTANCE in names:
        names.remove(DEFAULT_INSTANCE)
        names.insert(0, DEFAULT_INSTANCE)
    for name in names:
        certificate, key = clients / name / "client.pem", clients / name / "client-key.pem"
        if certificate.is_file() and key.is_file():
            return certificate, key
    return None


def _identify(
    port: Port,
    server: str | None,
    settings: config.Settings,
    credentials: tuple[Path, Path] | None,
    findings: list[Finding],
) -> bool:
    """Whether this kmipd answers on ``port``; appends what was found."""
    try:
        raw = socket.create_connection((port.host, port.port), timeout=TIMEOUT)
    except ConnectionRefusedError:
        findings.append(
            fail(
                f"{port}: nothing is listening, kmipd is not serving",
                f"start it: systemctl start kmipd (or kmipd serve --data-dir "
                f"{settings.data_dir}); journalctl -u kmipd says why it stopped",
            )
        )
        return False
    except OSError as exc:
        findings.append(
            fail(
                f"{port}: not reachable ({exc.strerror or type(exc).__name__})",
                f"check {port.setting.split('.')[0]}.host and the firewall",
            )
        )
        return False
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # identify whoever answers; trust is checked later
    if credentials is not None:
        # Unloadable: _converse reports it; without one the server certificate still shows.
        with contextlib.suppress(OSError, ssl.SSLError):
            context.load_cert_chain(*credentials)
    try:
        with context.wrap_socket(raw, server_hostname=port.host) as sock:
            der = sock.getpeercert(binary_form=True)
    except (ssl.SSLError, OSError):
        der = None
    finally:
        raw.close()
    if der is not None and server is not None and fingerprint(der) == server:
        findings.append(ok(f"{port}: this kmipd answers (its server certificate)"))
        return True
    owner = listener_process(port.port)
    if owner is not None and "kmipd" in owner[1]:
        findings.append(
            fail(
                f"{port}: kmipd (pid {owner[0]}) answers with another server certificate than "
                f"{settings.tls.certificate} (replaced on disk without a reload, or another "
                "setup's kmipd)",
                f"systemctl reload kmipd (or kill -HUP {owner[0]})"
                if port.label == "KMIP"
                else "systemctl restart kmipd (the HTTPS port reads its certificate at start)",
            )
            if der is not None
            else fail(
                f"{port}: kmipd (pid {owner[0]}) listens but the TLS handshake failed",
                "see why in its log: journalctl -u kmipd",
            )
        )
        return False
    who = f"pid {owner[0]}: {owner[1]}" if owner is not None else "not visible to this user"
    findings.append(
        fail(
            f"{port} is in use by another process ({who}), not this kmipd",
            f"stop that process, or set {port.setting} in "
            f"{settings.data_dir / config.CONFIG_FILE} to a free port",
        )
    )
    return False


def _converse(port: Port, settings: config.Settings, credentials: tuple[Path, Path]) -> Finding:
    certificate, key = credentials
    client = f"{certificate.parent.name}'s client certificate {certificate}"
    what = f"KMIP as vCenter ({client})"
    try:
        context = client_context(settings.path(settings.tls.ca), certificate, key)
    except (OSError, ssl.SSLError) as exc:
        return fail(f"{what}: cannot be loaded: {exc}", f"check {certificate} and {key}")
    try:
        with (
            socket.create_connection((port.host, port.port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=port.host) as sock,
        ):
            versions = _call(sock, Operation.DISCOVER_VERSIONS, DiscoverVersionsRequest())
            query = _call(
                sock,
                Operation.QUERY,
                QueryRequest(
                    query_functions=[
                        QueryFunction.QUERY_OPERATIONS,
                        QueryFunction.QUERY_OBJECTS,
                    ]
                ),
            )
    except ssl.SSLCertVerificationError as exc:
        return fail(
            f"{what}: the server certificate does not verify against "
            f"{settings.tls.ca}: {exc.verify_message}",
            "issue the server certificate from the kmipd CA for the names clients use "
            "(kmipd init --server-name NAME makes one), then systemctl reload kmipd",
        )
    except (ssl.SSLError, OSError, _Refused) as exc:
        return fail(
            f"{what}: the server closed the connection ({exc}): it does not accept that "
            "certificate",
            f"check it is allowed: kmipd cert list {certificate.parent.name} (and the log: "
            "journalctl -u kmipd)",
        )
    except (_Failed, DecodeError) as exc:
        return fail(f"{what}: {exc}", "see the server log: journalctl -u kmipd")
    spoken = ", ".join(f"{v.major}.{v.minor}" for v in versions.protocol_versions)
    return ok(
        f"{what}: DiscoverVersions ({spoken}), Query ({len(query.operations)} operations, "
        f"{len(query.object_types)} object types)"
    )


class _Refused(Exception):
    """The server closed the connection instead of answering."""


class _Failed(Exception):
    """The server answered with a failure."""


def _call(sock: ssl.SSLSocket, operation: Operation, payload: object) -> Any:
    request = messages.encode_request(
        messages.RequestMessage(
            header=messages.RequestHeader(protocol_version=ProtocolVersion.of(VCENTER_VERSION)),
            batch_items=[messages.RequestBatchItem(operation=operation, payload=payload)],
        )
    )
    sock.sendall(request)
    head = _read(sock, _HEADER.size)
    body = _read(sock, _HEADER.unpack(head)[2])
    item = messages.decode_response(head + body).batch_items[0]
    if item.result_status != ResultStatus.SUCCESS:
        raise _Failed(f"{operation.name} failed: {item.result_reason} {item.result_message}")
    return item.payload


def _read(sock: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise _Refused("end of stream")
        data += chunk
    return data


def _local(host: str) -> str:
    """Where this host reaches a listener bound to ``host``."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _certificate_fingerprint(path: Path) -> str | None:
    try:
        certificate = x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return None
    return fingerprint(certificate.public_bytes(serialization.Encoding.DER))


def listener_process(port: int) -> tuple[int, str] | None:
    """The process (pid, command line) listening on TCP ``port``, from /proc (Linux; only
    processes this user may inspect)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
            for fd in descriptors:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes()
                    return int(pid), command.replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
    return None
