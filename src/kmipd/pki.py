"""The certificates kmipd makes: its own CA, the server certificate, client certificates.

RSA 2048 with SHA-256 throughout: every vCenter and ESXi release that speaks KMIP accepts it,
which is not true of every ECDSA curve.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kmipd.files import create_file

KEY_SIZE = 2048
CA_YEARS = 10
LEAF_YEARS = 2


@dataclass(frozen=True, slots=True)
class Issued:
    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kmipd"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_ca(common_name: str = "kmipd CA", now: dt.datetime | None = None) -> Issued:
    now = now or _now()
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def _leaf(
    ca: Issued,
    common_name: str,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
    now: dt.datetime | None,
    days: int,
) -> Issued:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    certificate = _leaf_certificate(
        ca, _name(common_name), key.public_key(), usage, sans, now, days
    )
    return Issued(certificate, key)


def _leaf_certificate(
    ca: Issued,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
    now: dt.datetime | None,
    days: int,
) -> x509.Certificate:
    now = now or _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca.private_key, hashes.SHA256())


def default_server_names() -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    host = socket.gethostname()
    if host and host not in names:
        names.append(host)
    return names


def server_names_with_defaults(names: list[str] | None) -> list[str]:
    """The names a server certificate gets: those given (the first is its common name),
    then the defaults not among them, so that local tools (which connect to 127.0.0.1 or
    localhost) still verify it."""
    given = list(names or [])
    return given + [name for name in default_server_names() if name not in given]


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def issue_server(
    ca: Issued, names: list[str] | None = None, now: dt.datetime | None = None
) -> Issued:
    names = names or default_server_names()
    return _leaf(
        ca, names[0], ExtendedKeyUsageOID.SERVER_AUTH, _general_names(names), now, 365 * LEAF_YEARS
    )


def issue_client(
    ca: Issued, common_name: str, now: dt.datetime | None = None, days: int = 365 * LEAF_YEARS
) -> Issued:
    return _leaf(ca, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [], now, days)


class CsrError(ValueError):
    """A certificate signing request kmipd will not sign; the message says why."""


def sign_csr(
    ca: Issued,
    csr: x509.CertificateSigningRequest,
    now: dt.datetime | None = None,
    days: int = 365 * LEAF_YEARS,
) -> x509.Certificate:
    """A client certificate for the key in ``csr`` (vCenter's "new certificate signing
    request" flow): the CSR's subject and subject alternative names, kmipd's usages."""
    if not csr.is_signature_valid:
        raise CsrError("the CSR's signature does not verify; generate it again")
    public_key = csr.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < KEY_SIZE:
            raise CsrError(f"the CSR's RSA key has {public_key.key_size} bits; use {KEY_SIZE}+")
    elif not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CsrError("the CSR's key must be RSA (2048 bits or more) or ECDSA")
    if len(csr.subject) == 0:
        raise CsrError("the CSR has an empty subject; give it at least a common name (CN)")
    sans: list[x509.GeneralName] = []
    try:
        extension = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        pass
    else:
        sans = [
            name
            for name in extension.value
            if isinstance(name, x509.DNSName | x509.IPAddress | x509.RFC822Name)
        ]
    return _leaf_certificate(
        ca, csr.subject, public_key, ExtendedKeyUsageOID.CLIENT_AUTH, sans, now, days
    )


def load_ca(certificate: Path, private_key: Path) -> Issued:
    """kmipd's CA from its PEM files (``DIR/pki/ca.pem``, ``DIR/pki/ca-key.pem``)."""
    key = serialization.load_pem_private_key(private_key.read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{private_key} does not hold an RSA private key")
    return Issued(x509.load_pem_x509_certificate(certificate.read_bytes()), key)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only; it appears whole or not at all."""
    create_file(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    create_file(path, data, 0o644)
