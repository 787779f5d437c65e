"""Certificates: kmipd's CA, the server certificate (chain and expiry), every allowed client
certificate and trusted CA in the store (expiry, and the chain of those kmipd's CA issued)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from kmipd import config
from kmipd.doctor.report import Finding, fail, ok, warn
from kmipd.store.records import CertificateRecord

# A certificate that expires within this is reported (WARN) so that it is renewed in time.
RENEW_BEFORE = dt.timedelta(days=30)


def check_files(settings: config.Settings, now: dt.datetime) -> list[Finding]:
    """The CA and the server certificate of ``[tls]``."""
    ca_path = settings.path(settings.tls.ca)
    ca = _load(ca_path)
    if ca is None:
        return []  # permissions.check already reports a missing or unreadable TLS file
    findings = [_validity(ca, f"kmipd CA {ca_path}", now, _renew_ca(settings))]
    server_path = settings.path(settings.tls.certificate)
    server = _load(server_path)
    if server is None:
        return findings
    what = f"server certificate {server_path}"
    renew = (
        f"issue a new server certificate from the CA, put it at {server_path} (key at "
        f"{settings.path(settings.tls.private_key)}) and run 'systemctl reload kmipd'"
    )
    if not _issued_by(server, ca):
        findings.append(
            fail(
                f"{what} was not issued by the kmipd CA {ca_path} (issuer "
                f"{server.issuer.rfc4514_string()}): vCenter, trusting that CA, refuses it",
                renew,
            )
        )
    findings.append(_validity(server, what, now, renew))
    return findings


def check_allowed(
    records: list[CertificateRecord], settings: config.Settings, now: dt.datetime
) -> list[Finding]:
    """Every allowed client certificate and trusted CA of every instance."""
    ca = _load(settings.path(settings.tls.ca))
    findings: list[Finding] = []
    for record in sorted(records, key=lambda r: (r.instance, r.subject)):
        kind = "trusted CA" if record.is_ca else "client certificate"
        what = (
            f"{kind} {record.subject!r} of instance {record.instance} "
            f"(SHA-256 {record.fingerprint[:16]}...)"
        )
        try:
            certificate = x509.load_pem_x509_certificate(record.pem.encode())
        except ValueError:
            findings.append(
                fail(f"{what} is not a readable certificate", _replace(record, "upload it again"))
            )
            continue
        if (
            not record.is_ca
            and ca is not None
            and certificate.issuer == ca.subject
            and not _issued_by(certificate, ca)
        ):
            findings.append(
                fail(
                    f"{what} names the kmipd CA as issuer but its signature does not verify "
                    "under it",
                    _replace(record, "issue a new one"),
                )
            )
            continue
        findings.append(
            _validity(certificate, what, now, _replace(record, "issue or upload a new one"))
        )
    if not records:
        findings.append(
            warn(
                "no client certificate is allowed for any instance: no KMIP client can connect",
                "kmipd cert issue INSTANCE --common-name NAME (or cert upload / trust-ca)",
            )
        )
    return findings


def _validity(certificate: x509.Certificate, what: str, now: dt.datetime, renew: str) -> Finding:
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    if now < not_before:
        return fail(f"{what} is not valid before {_day(not_before)} (check the clock)", renew)
    if now >= not_after:
        return fail(f"{what} expired on {_day(not_after)}", renew)
    if not_after - now < RENEW_BEFORE:
        return warn(f"{what} expires on {_day(not_after)}, in under 30 days", renew)
    return ok(f"{what} valid until {_day(not_after)}")


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _load(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return None


def _renew_ca(settings: config.Settings) -> str:
    return (
        f"make a new CA, give it to every KMIP client (vCenter: upload {settings.tls.ca}) and "
        "re-issue the server and client certificates under it"
    )


def _replace(record: CertificateRecord, how: str) -> str:
    return (
        f"{how} for instance {record.instance} (kmipd cert issue {record.instance} "
        f"--common-name NAME, or kmipd cert upload {record.instance} FILE), then remove this "
        f"one: kmipd cert delete {record.instance} {record.fingerprint[:16]}"
    )


def _day(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")
