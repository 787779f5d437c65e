"""Small KMIP request builders and response readers for socket-level tests."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kmipd.protocol import messages
from kmipd.protocol._generated import NameType, ObjectType, Operation, ResultStatus, Tag
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.payloads import (
    CreateRequest,
    DiscoverVersionsRequest,
    GetRequest,
)
from kmipd.protocol.ttlv import ENUMERATION, INTEGER, STRUCTURE, TEXT_STRING, Item

AES = 3


def request(operation: Operation, payload: object, version: tuple[int, int] = (1, 4)) -> bytes:
    return messages.encode_request(
        messages.RequestMessage(
            header=messages.RequestHeader(protocol_version=ProtocolVersion.of(version)),
            batch_items=[messages.RequestBatchItem(operation=operation, payload=payload)],
        )
    )


def name_attribute(value: str) -> Attribute:
    """A Name attribute (uninterpreted text string) with ``value``."""
    item = Item(
        Tag.NAME,
        STRUCTURE,
        [
            Item(Tag.NAME_VALUE, TEXT_STRING, value),
            Item(Tag.NAME_TYPE, ENUMERATION, NameType.UNINTERPRETED_TEXT_STRING),
        ],
    )
    return Attribute("Name", item, None, STRUCTURE)


def discover_versions() -> bytes:
    return request(Operation.DISCOVER_VERSIONS, DiscoverVersionsRequest())


def create_aes(version: tuple[int, int] = (1, 4)) -> bytes:
    template = TemplateAttribute(
        attributes=[
            Attribute("Cryptographic Algorithm", AES, None, ENUMERATION),
            Attribute("Cryptographic Length", 256, None, INTEGER),
            Attribute("Cryptographic Usage Mask", 12, None, INTEGER),
        ]
    )
    return request(
        Operation.CREATE,
        CreateRequest(object_type=ObjectType.SYMMETRIC_KEY, template_attribute=template),
        version,
    )


def get(uid: str, version: tuple[int, int] = (1, 4)) -> bytes:
    return request(Operation.GET, GetRequest(unique_identifier=uid), version)


def item(response: bytes) -> messages.ResponseBatchItem:
    """The only batch item of a response."""
    decoded = messages.decode_response(response)
    assert len(decoded.batch_items) == 1
    return decoded.batch_items[0]


def ok(response: bytes) -> Any:
    """The payload of a successful one-item response; fails the test otherwise."""
    result = item(response)
    assert result.result_status == ResultStatus.SUCCESS, (
        result.result_reason,
        result.result_message,
    )
    return result.payload


def created_uid(response: bytes) -> str:
    uid = ok(response).unique_identifier
    assert isinstance(uid, str)
    return uid


def key_material(response: bytes) -> bytes:
    material = ok(response).managed_object.key_block.key_value.key_material
    assert isinstance(material, bytes)
    return material


# -- certificates ----------------------------------------------------------------------------


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def certificate(
    common_name: str,
    *,
    issuer: tuple[x509.Certificate, Any] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    ca: bool = False,
    rsa_key: bool = False,
) -> tuple[x509.Certificate, Any]:
    """A certificate and its key: self-signed unless ``issuer`` (certificate, key) is given.

    ``eku=None`` leaves the Extended Key Usage extension out entirely (vCenter's self-signed
    client certificates may have none).
    """
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = not_before or now() - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + dt.timedelta(days=30))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    signer = issuer[1] if issuer else key
    return builder.sign(signer, hashes.SHA256()), key


CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]


def write_credentials(
    directory: Any, name: str, cert: x509.Certificate, key: Any
) -> tuple[Any, Any]:
    """PEM files for ``ssl.SSLContext.load_cert_chain``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


# -- timing ----------------------------------------------------------------------------------


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def closed_by_peer(sock: socket.socket | ssl.SSLSocket, timeout: float) -> float | None:
    """Seconds until the peer closes ``sock`` (EOF, reset or TLS alert); None on timeout."""
    start = time.perf_counter()
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return time.perf_counter() - start
    except TimeoutError:
        return None
    except (ssl.SSLError, ConnectionError, OSError):
        return time.perf_counter() - start
