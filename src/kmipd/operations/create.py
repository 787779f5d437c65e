"""Create: a new symmetric key, generated here (KMIP 1.4 §4.1)."""

from __future__ import annotations

import secrets

from kmipd.operations._attributes import check_client_attributes
from kmipd.operations._common import (
    apply_dates,
    check_unique_names,
    name_values,
    new_attribute_set,
    server_attributes,
    template_attributes,
)
from kmipd.protocol._generated import (
    CryptographicAlgorithm,
    KeyFormatType,
    ObjectType,
    Operation,
    ResultReason,
    State,
)
from kmipd.protocol.objects import KeyBlock, KeyValue, SymmetricKey
from kmipd.protocol.payloads import CreateRequest, CreateResponse
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError

OPERATION = Operation.CREATE

A = CryptographicAlgorithm
# Algorithm -> the key lengths (bits) kmipd generates for it.
SYMMETRIC_LENGTHS: dict[int, frozenset[int]] = {
    A.AES: frozenset((128, 192, 256)),
    A.CHACHA20: frozenset((256,)),
    A.DES3: frozenset((112, 168)),
    A.HMAC_SHA1: frozenset(range(8, 513, 8)),
    A.HMAC_SHA224: frozenset(range(8, 513, 8)),
    A.HMAC_SHA256: frozenset(range(8, 513, 8)),
    A.HMAC_SHA384: frozenset(range(8, 1025, 8)),
    A.HMAC_SHA512: frozenset(range(8, 1025, 8)),
}


def material_bytes(algorithm: int, length: int) -> bytes:
    """Fresh random key material; Triple DES keys carry their parity bits (8 per 56)."""
    if algorithm == A.DES3:
        return _with_odd_parity(secrets.token_bytes(length // 7))
    return secrets.token_bytes(length // 8)


def _with_odd_parity(material: bytes) -> bytes:
    return bytes((b & 0xFE) | (bin(b & 0xFE).count("1") % 2 == 0) for b in material)


def symmetric_key(algorithm: int, length: int, material: bytes) -> SymmetricKey:
    return SymmetricKey(
        key_block=KeyBlock(
            key_format_type=KeyFormatType.RAW,
            key_value=KeyValue(key_material=material),
            cryptographic_algorithm=CryptographicAlgorithm(algorithm),
            cryptographic_length=length,
        )
    )


def check_symmetric(algorithm: object, length: object) -> tuple[int, int]:
    if algorithm is None or length is None:
        raise KmipError(
            ResultReason.INVALID_FIELD if algorithm is not None else ResultReason.MISSING_DATA,
            "a symmetric key needs a Cryptographic Algorithm and a Cryptographic Length",
        )
    lengths = SYMMETRIC_LENGTHS.get(algorithm) if isinstance(algorithm, int) else None
    if lengths is None:
        raise KmipError(
            ResultReason.INVALID_FIELD,
            "this Cryptographic Algorithm is not supported for symmetric keys",
        )
    if not isinstance(length, int) or length not in lengths:
        raise KmipError(
            ResultReason.INVALID_FIELD,
            "this Cryptographic Length is not supported for the algorithm",
        )
    return int(algorithm), int(length)


async def handle(ctx: RequestContext, request: CreateRequest) -> CreateResponse:
    if request.object_type != ObjectType.SYMMETRIC_KEY:
        raise KmipError(
            ResultReason.INVALID_OBJECT_TYPE, "Create makes symmetric keys; register other objects"
        )
    attributes = await template_attributes(ctx, request)
    check_client_attributes(attributes)
    stored = new_attribute_set(attributes, ctx.now)
    algorithm, length = check_symmetric(
        stored.value("Cryptographic Algorithm"), stored.value("Cryptographic Length")
    )
    await check_unique_names(ctx, name_values(attributes), None)
    body = symmetric_key(algorithm, length, material_bytes(algorithm, length))
    server_attributes(stored, body, ctx.now, generated=True)
    obj = await ctx.objects.create(
        ctx.instance, ObjectType.SYMMETRIC_KEY, body, stored, ctx.now, State.PRE_ACTIVE
    )
    apply_dates(obj, ctx.now)
    if obj.state != State.PRE_ACTIVE:  # an Activation Date in the past
        await ctx.objects.save(obj, ctx.now)
    return CreateResponse(object_type=ObjectType.SYMMETRIC_KEY, unique_identifier=obj.uid)
