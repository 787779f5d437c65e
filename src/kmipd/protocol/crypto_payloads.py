"""Request and response payloads of the cryptographic operations (KMIP 1.4 §4.29-4.36,
2.1 §6.1.18 ff.): Encrypt, Decrypt, Sign, Signature Verify, MAC, MAC Verify, Hash and RNG
Retrieve. Cryptographic Parameters stay a raw :class:`Item`: ``kmipd.crypto.params`` reads
them, field by field, together with the key's own.

Every operation declares the multi-part fields (Init Indicator, Final Indicator, Correlation
Value): Encrypt and Decrypt take data in parts, the others refuse a part with a precise
reason rather than fail to decode it.
"""

# kmip_field() returns a dataclasses.field(); ruff cannot tell.
# ruff: noqa: RUF009

from __future__ import annotations

from dataclasses import dataclass

from kmipd.protocol._generated import Tag, ValidityIndicator
from kmipd.protocol.codec import (
    ANY,
    BOOLEAN,
    BYTE_STRING,
    ENUMERATION,
    INTEGER,
    kmip_field,
    uid_field,
)
from kmipd.protocol.ttlv import Item


def _params() -> Item | None:
    return kmip_field(Tag.CRYPTOGRAPHIC_PARAMETERS, ANY)  # type: ignore[no-any-return]


def _bytes(tag: int, **kwargs: object) -> bytes | None:
    # secret: data, signatures and MACs stay out of the payload's repr (and so out of logs).
    return kmip_field(tag, BYTE_STRING, secret=True, **kwargs)  # type: ignore[no-any-return]


def _flag(tag: int) -> bool | None:
    return kmip_field(tag, BOOLEAN)  # type: ignore[no-any-return]


@dataclass(slots=True)
class EncryptRequest:
    unique_identifier: str | Item | None = uid_field()
    cryptographic_parameters: Item | None = _params()
    data: bytes | None = _bytes(Tag.DATA)
    iv_counter_nonce: bytes | None = _bytes(Tag.IV_COUNTER_NONCE)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)
    init_indicator: bool | None = _flag(Tag.INIT_INDICATOR)
    final_indicator: bool | None = _flag(Tag.FINAL_INDICATOR)
    authenticated_encryption_additional_data: bytes | None = _bytes(
        Tag.AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA
    )


@dataclass(slots=True)
class EncryptResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    data: bytes | None = _bytes(Tag.DATA)
    iv_counter_nonce: bytes | None = _bytes(Tag.IV_COUNTER_NONCE)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)
    authenticated_encryption_tag: bytes | None = _bytes(Tag.AUTHENTICATED_ENCRYPTION_TAG)


@dataclass(slots=True)
class DecryptRequest:
    unique_identifier: str | Item | None = uid_field()
    cryptographic_parameters: Item | None = _params()
    data: bytes | None = _bytes(Tag.DATA)
    iv_counter_nonce: bytes | None = _bytes(Tag.IV_COUNTER_NONCE)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)
    init_indicator: bool | None = _flag(Tag.INIT_INDICATOR)
    final_indicator: bool | None = _flag(Tag.FINAL_INDICATOR)
    authenticated_encryption_additional_data: bytes | None = _bytes(
        Tag.AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA
    )
    authenticated_encryption_tag: bytes | None = _bytes(Tag.AUTHENTICATED_ENCRYPTION_TAG)


@dataclass(slots=True)
class DecryptResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    data: bytes | None = _bytes(Tag.DATA)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)


@dataclass(slots=True)
class SignRequest:
    unique_identifier: str | Item | None = uid_field()
    cryptographic_parameters: Item | None = _params()
    data: bytes | None = _bytes(Tag.DATA)
    digested_data: bytes | None = _bytes(Tag.DIGESTED_DATA)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)
    init_indicator: bool | None = _flag(Tag.INIT_INDICATOR)
    final_indicator: bool | None = _flag(Tag.FINAL_INDICATOR)


@dataclass(slots=True)
class SignResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    signature_data: bytes | None = _bytes(Tag.SIGNATURE_DATA)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)


@dataclass(slots=True)
class SignatureVerifyRequest:
    unique_identifier: str | Item | None = uid_field()
    cryptographic_parameters: Item | None = _params()
    data: bytes | None = _bytes(Tag.DATA)
    digested_data: bytes | None = _bytes(Tag.DIGESTED_DATA)
    signature_data: bytes | None = _bytes(Tag.SIGNATURE_DATA)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)
    init_indicator: bool | None = _flag(Tag.INIT_INDICATOR)
    final_indicator: bool | None = _flag(Tag.FINAL_INDICATOR)


@dataclass(slots=True)
class SignatureVerifyResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    validity_indicator: ValidityIndicator | int | None = kmip_field(
        Tag.VALIDITY_INDICATOR, ENUMERATION, required=True
    )
    data: bytes | None = _bytes(Tag.DATA)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)


@dataclass(slots=True)
class MacRequest:
    unique_identifier: str | Item | None = uid_field()
    cryptographic_parameters: Item | None = _params()
    data: bytes | None = _bytes(Tag.DATA)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)
    init_indicator: bool | None = _flag(Tag.INIT_INDICATOR)
    final_indicator: bool | None = _flag(Tag.FINAL_INDICATOR)


@dataclass(slots=True)
class MacResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    mac_data: bytes | None = _bytes(Tag.MAC_DATA)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)


@dataclass(slots=True)
class MacVerifyRequest:
    unique_identifier: str | Item | None = uid_field()
    cryptographic_parameters: Item | None = _params()
    data: bytes | None = _bytes(Tag.DATA)
    mac_data: bytes | None = _bytes(Tag.MAC_DATA)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)
    init_indicator: bool | None = _flag(Tag.INIT_INDICATOR)
    final_indicator: bool | None = _flag(Tag.FINAL_INDICATOR)


@dataclass(slots=True)
class MacVerifyResponse:
    unique_identifier: str | Item | None = uid_field(required=True)
    validity_indicator: ValidityIndicator | int | None = kmip_field(
        Tag.VALIDITY_INDICATOR, ENUMERATION, required=True
    )
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)


@dataclass(slots=True)
class HashRequest:
    cryptographic_parameters: Item | None = kmip_field(
        Tag.CRYPTOGRAPHIC_PARAMETERS, ANY, required=True
    )
    data: bytes | None = _bytes(Tag.DATA)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)
    init_indicator: bool | None = _flag(Tag.INIT_INDICATOR)
    final_indicator: bool | None = _flag(Tag.FINAL_INDICATOR)


@dataclass(slots=True)
class HashResponse:
    data: bytes | None = _bytes(Tag.DATA)
    correlation_value: bytes | None = _bytes(Tag.CORRELATION_VALUE)


@dataclass(slots=True)
class RngRetrieveRequest:
    data_length: int | None = kmip_field(Tag.DATA_LENGTH, INTEGER, required=True)


@dataclass(slots=True)
class RngRetrieveResponse:
    data: bytes | None = _bytes(Tag.DATA, required=True)
