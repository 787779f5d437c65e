"""Who a client is: its verified certificate decides its instance.

A certificate belongs to an instance when it is pinned on it (its exact certificate is
allowed), or when it was issued by a CA the instance trusts. One certificate belongs to one
instance. Looked up in the store on every connection, so removing a certificate cuts access
at once; while the database is unreachable, against the allowed certificates as the server
last read them (``remember``: at start, on every change made through any node, and on a
timer), so that a node without its database still knows who its clients are and can answer
them with a KMIP error.

TLS has already verified the chain and the validity dates; the dates are checked again here
so that a change to the TLS verify flags cannot let an expired certificate map to an instance.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from kmipd.store.records import CertificateRecord
from kmipd.store.store import Store, StoreUnavailable
from kmipd.transport.kmip_listener import Peer


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    instance: str
    fingerprint: str
    subject: str
    # The allowed certificate that admitted it: itself when pinned, else its trusted CA.
    allowed_by: str = ""


def certificate_subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()


class IdentityResolver:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._known: list[CertificateRecord] | None = None

    def remember(self, certificates: list[CertificateRecord]) -> None:
        """The allowed certificates as just read from the store."""
        self._known = list(certificates)

    async def resolve(self, peer: Peer) -> ClientIdentity | None:
        try:
            certificates = await self._store.certificates()
        except StoreUnavailable:
            if self._known is None:
                raise
            certificates = self._known  # the database is down: the last ones read
        try:
            leaf = x509.load_der_x509_certificate(peer.certificate_der)
        except ValueError:
            return None
        now = dt.datetime.now(dt.UTC)
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            return None
        subject = certificate_subject(leaf)
        for record in certificates:
            if not record.is_ca and record.fingerprint == peer.certificate_fingerprint:
                return ClientIdentity(
                    record.instance, peer.certificate_fingerprint, subject, record.fingerprint
                )
        for record in certificates:
            if record.is_ca and _issued_by(leaf, record):
                return ClientIdentity(
                    record.instance, peer.certificate_fingerprint, subject, record.fingerprint
                )
        return None


def _issued_by(leaf: x509.Certificate, ca: CertificateRecord) -> bool:
    try:
        issuer = x509.load_pem_x509_certificate(ca.pem.encode("ascii"))
        leaf.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
