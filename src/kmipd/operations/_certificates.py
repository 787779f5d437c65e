"""Attributes the server derives from a registered X.509 certificate (KMIP 2.1 §4.9-4.12).

The subject and issuer name parts (Certificate Subject CN, Certificate Issuer O, ...) are
2.x attributes; :func:`kmipd.operations._common.all_attributes` hides them from 1.x clients.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from kmipd.protocol.attributes import Attribute
from kmipd.protocol.ttlv import TEXT_STRING

# Name attribute OID -> the suffix of the KMIP attribute name.
NAME_PARTS: dict[x509.ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.EMAIL_ADDRESS: "Email",
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.USER_ID: "UID",
    NameOID.SERIAL_NUMBER: "Serial Number",
    NameOID.TITLE: "Title",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.DN_QUALIFIER: "DN Qualifier",
}

ATTRIBUTE_NAMES = tuple(
    f"Certificate {role} {part}" for role in ("Subject", "Issuer") for part in NAME_PARTS.values()
)


def certificate_attributes(der: bytes) -> list[Attribute]:
    """Subject and issuer name parts of a DER certificate; none if it does not parse."""
    try:
        certificate = x509.load_der_x509_certificate(der)
        # The names are parsed lazily: a name holding an ASN.1 string type cryptography does
        # not know raises KeyError here, not ValueError (found by fuzzing).
        names = (("Subject", list(certificate.subject)), ("Issuer", list(certificate.issuer)))
    except (ValueError, KeyError):
        return []
    result = []
    for role, parts in names:
        for part in parts:
            suffix = NAME_PARTS.get(part.oid)
            if suffix is not None and isinstance(part.value, str):
                result.append(
                    Attribute(f"Certificate {role} {suffix}", part.value, None, TEXT_STRING)
                )
    return result
