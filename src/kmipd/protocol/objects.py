"""Managed-object structures and small shared structures, declared for the codec.

Key material is ``bytes`` when it is a Byte String and a raw :class:`Item` when it is a
Structure (Transparent keys...); a wrapped Key Value (a Byte String) is kept as an Item.
"""

# kmip_field() returns a dataclasses.field(); ruff cannot tell.
# ruff: noqa: RUF009

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kmipd.protocol._generated import (
    CertificateType,
    CryptographicAlgorithm,
    KeyCompressionType,
    KeyFormatType,
    ObjectType,
    OpaqueDataType,
    RevocationReasonCode,
    SecretDataType,
    SplitKeyMethod,
    Tag,
)
from kmipd.protocol.attributes import ATTRIBUTE, ATTRIBUTES, Attribute
from kmipd.protocol.codec import (
    ANY,
    BIG_INTEGER,
    BYTE_STRING,
    ENUMERATION,
    INTEGER,
    TEXT_STRING,
    choice_field,
    kmip_field,
)
from kmipd.protocol.ttlv import Item

__all__ = [
    "MANAGED_OBJECTS",
    "OBJECT_TYPES",
    "Authentication",
    "Certificate",
    "CertificateRequest",
    "KeyBlock",
    "KeyValue",
    "OpaqueObject",
    "PGPKey",
    "PrivateKey",
    "ProtocolVersion",
    "PublicKey",
    "RevocationReason",
    "SecretData",
    "SplitKey",
    "SymmetricKey",
    "Template",
    "managed_object_field",
]


@dataclass(slots=True)
class ProtocolVersion:
    major: int | None = kmip_field(Tag.PROTOCOL_VERSION_MAJOR, INTEGER, required=True)
    minor: int | None = kmip_field(Tag.PROTOCOL_VERSION_MINOR, INTEGER, required=True)

    def as_tuple(self) -> tuple[int, int]:
        return (self.major or 0, self.minor or 0)

    @classmethod
    def of(cls, version: tuple[int, int]) -> ProtocolVersion:
        return cls(major=version[0], minor=version[1])


@dataclass(slots=True)
class RevocationReason:
    code: RevocationReasonCode | int | None = kmip_field(
        Tag.REVOCATION_REASON_CODE, ENUMERATION, required=True
    )
    message: str | None = kmip_field(Tag.REVOCATION_MESSAGE, TEXT_STRING)


@dataclass(slots=True)
class Authentication:
    """Request-header authentication: Credential structures kept raw."""

    credentials: list[Item] = kmip_field(Tag.CREDENTIAL, ANY, repeated=True, required=True)


@dataclass(slots=True)
class KeyValue:
    """Key Value: material as bytes (Byte String) or an Item (Structure), plus attributes."""

    key_material: bytes | Item | None = kmip_field(
        Tag.KEY_MATERIAL, BYTE_STRING, required=True, variant=True, secret=True
    )
    attributes: list[Attribute] = kmip_field(
        Tag.ATTRIBUTE, ATTRIBUTE, repeated=True, v2=(Tag.ATTRIBUTES, ATTRIBUTES)
    )


@dataclass(slots=True)
class KeyBlock:
    key_format_type: KeyFormatType | int | None = kmip_field(
        Tag.KEY_FORMAT_TYPE, ENUMERATION, required=True
    )
    key_compression_type: KeyCompressionType | int | None = kmip_field(
        Tag.KEY_COMPRESSION_TYPE, ENUMERATION
    )
    # A Structure in clear; a Byte String when the key is wrapped (then kept as a raw Item).
    key_value: KeyValue | Item | None = kmip_field(Tag.KEY_VALUE, KeyValue, variant=True)
    cryptographic_algorithm: CryptographicAlgorithm | int | None = kmip_field(
        Tag.CRYPTOGRAPHIC_ALGORITHM, ENUMERATION
    )
    cryptographic_length: int | None = kmip_field(Tag.CRYPTOGRAPHIC_LENGTH, INTEGER)
    key_wrapping_data: Item | None = kmip_field(Tag.KEY_WRAPPING_DATA, ANY)


@dataclass(slots=True)
class SymmetricKey:
    key_block: KeyBlock | None = kmip_field(Tag.KEY_BLOCK, KeyBlock, required=True)


@dataclass(slots=True)
class PublicKey:
    key_block: KeyBlock | None = kmip_field(Tag.KEY_BLOCK, KeyBlock, required=True)


@dataclass(slots=True)
class PrivateKey:
    key_block: KeyBlock | None = kmip_field(Tag.KEY_BLOCK, KeyBlock, required=True)


@dataclass(slots=True)
class SecretData:
    secret_data_type: SecretDataType | int | None = kmip_field(
        Tag.SECRET_DATA_TYPE, ENUMERATION, required=True
    )
    key_block: KeyBlock | None = kmip_field(Tag.KEY_BLOCK, KeyBlock, required=True)


@dataclass(slots=True)
class OpaqueObject:
    opaque_data_type: OpaqueDataType | int | None = kmip_field(
        Tag.OPAQUE_DATA_TYPE, ENUMERATION, required=True
    )
    opaque_data_value: bytes | None = kmip_field(
        Tag.OPAQUE_DATA_VALUE, BYTE_STRING, required=True, secret=True
    )


@dataclass(slots=True)
class Certificate:
    certificate_type: CertificateType | int | None = kmip_field(
        Tag.CERTIFICATE_TYPE, ENUMERATION, required=True
    )
    certificate_value: bytes | None = kmip_field(Tag.CERTIFICATE_VALUE, BYTE_STRING, required=True)


@dataclass(slots=True)
class SplitKey:
    split_key_parts: int | None = kmip_field(Tag.SPLIT_KEY_PARTS, INTEGER, required=True)
    key_part_identifier: int | None = kmip_field(Tag.KEY_PART_IDENTIFIER, INTEGER, required=True)
    split_key_threshold: int | None = kmip_field(Tag.SPLIT_KEY_THRESHOLD, INTEGER, required=True)
    split_key_method: SplitKeyMethod | int | None = kmip_field(
        Tag.SPLIT_KEY_METHOD, ENUMERATION, required=True
    )
    prime_field_size: int | None = kmip_field(Tag.PRIME_FIELD_SIZE, BIG_INTEGER)
    key_block: KeyBlock | None = kmip_field(Tag.KEY_BLOCK, KeyBlock, required=True)


@dataclass(slots=True)
class Template:
    """1.x Template object (deprecated in 1.3, gone in 2.0)."""

    attributes: list[Attribute] = kmip_field(Tag.ATTRIBUTE, ATTRIBUTE, repeated=True)


@dataclass(slots=True)
class PGPKey:
    pgp_key_version: int | None = kmip_field(Tag.PGP_KEY_VERSION, INTEGER, required=True)
    key_block: KeyBlock | None = kmip_field(Tag.KEY_BLOCK, KeyBlock, required=True)


@dataclass(slots=True)
class CertificateRequest:
    """2.x Certificate Request object."""

    certificate_request_type: int | None = kmip_field(
        Tag.CERTIFICATE_REQUEST_TYPE, ENUMERATION, required=True
    )
    certificate_request_value: bytes | None = kmip_field(
        Tag.CERTIFICATE_REQUEST_VALUE, BYTE_STRING, required=True
    )


MANAGED_OBJECTS: dict[int, type] = {
    Tag.CERTIFICATE: Certificate,
    Tag.SYMMETRIC_KEY: SymmetricKey,
    Tag.PUBLIC_KEY: PublicKey,
    Tag.PRIVATE_KEY: PrivateKey,
    Tag.SPLIT_KEY: SplitKey,
    Tag.TEMPLATE: Template,
    Tag.SECRET_DATA: SecretData,
    Tag.OPAQUE_OBJECT: OpaqueObject,
    Tag.PGP_KEY: PGPKey,
    Tag.CERTIFICATE_REQUEST: CertificateRequest,
}
"""Managed-object tag → class (the object part of Register and Get payloads)."""

OBJECT_TYPES: dict[type, ObjectType] = {
    Certificate: ObjectType.CERTIFICATE,
    SymmetricKey: ObjectType.SYMMETRIC_KEY,
    PublicKey: ObjectType.PUBLIC_KEY,
    PrivateKey: ObjectType.PRIVATE_KEY,
    SplitKey: ObjectType.SPLIT_KEY,
    Template: ObjectType.TEMPLATE,
    SecretData: ObjectType.SECRET_DATA,
    OpaqueObject: ObjectType.OPAQUE_OBJECT,
    PGPKey: ObjectType.PGP_KEY,
    CertificateRequest: ObjectType.CERTIFICATE_REQUEST,
}
"""Managed-object class → its Object Type."""


def managed_object_field(*, required: bool = False) -> Any:
    """A payload field holding one managed object of any type."""
    return choice_field(MANAGED_OBJECTS, required=required)
