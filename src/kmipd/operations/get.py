"""Get: an object with its key material (KMIP 1.4 §4.11).

Works for Pre-Active keys: vCenter fetches a key before it activates it. Symmetric keys are
returned Raw unless the client asks for Transparent Symmetric Key.
"""

from __future__ import annotations

import contextlib

from kmipd.keys import asymmetric
from kmipd.operations._common import load, load_body
from kmipd.protocol._generated import KeyFormatType, ObjectType, Operation, ResultReason, Tag
from kmipd.protocol.objects import KeyBlock, KeyValue, PrivateKey, PublicKey, SymmetricKey
from kmipd.protocol.payloads import GetRequest, GetResponse
from kmipd.protocol.ttlv import BOOLEAN, BYTE_STRING, STRUCTURE, Item
from kmipd.service.context import RequestContext
from kmipd.service.errors import ConcurrentUpdate, KmipError

OPERATION = Operation.GET

# How often kmipd records that a key was fetched (a write per Get would cost an fsync each).
LAST_FETCHED_RESOLUTION = 60


async def handle(ctx: RequestContext, request: GetRequest) -> GetResponse:
    if request.key_wrapping_specification is not None or request.key_wrap_type is not None:
        raise KmipError(
            ResultReason.FEATURE_NOT_SUPPORTED,
            "returning keys wrapped under another key is not supported",
        )
    if request.key_compression_type is not None:
        raise KmipError(
            ResultReason.KEY_COMPRESSION_TYPE_NOT_SUPPORTED, "key compression is not supported"
        )
    obj = await load(ctx, request.unique_identifier)
    if obj.attributes.value("Sensitive") is True:
        # KMIP 2.1 §4.53: the material of a Sensitive object leaves only wrapped.
        raise KmipError(ResultReason.SENSITIVE, "the object is Sensitive; it is not returned")
    if obj.attributes.value("Extractable") is False:
        raise KmipError(ResultReason.NOT_EXTRACTABLE, "the object is not Extractable")
    await load_body(ctx, obj)
    body = obj.body
    if request.key_format_type is not None:
        body = convert_format(obj.object_type, body, request.key_format_type)
    fresh = obj.attributes.value("Fresh") is True
    if fresh:  # KMIP 1.1 §3.34: an object is no longer fresh once served to a client
        obj.attributes.set("Fresh", False, BOOLEAN)
    if fresh or obj.last_fetched is None or ctx.now - obj.last_fetched >= LAST_FETCHED_RESOLUTION:
        obj.last_fetched = ctx.now
        obj.last_fetched_by = ctx.client.fingerprint
        # Bookkeeping only: the hosts of a vSAN cluster fetch one KEK at the same moment, and
        # a lost race on "last fetched" must not fail a host's boot. The winner recorded a
        # fetch, or a later Get will.
        with contextlib.suppress(ConcurrentUpdate):
            # Bookkeeping ("last fetched", and Fresh, which only says whether the object was
            # ever served): committed before the answer, on disk within the store's flush
            # delay, so a Get never waits for a disk flush.
            await ctx.objects.save(obj, ctx.now, durable=False)
    return GetResponse(object_type=obj.object_type, unique_identifier=obj.uid, managed_object=body)


def convert_format(object_type: int, body: object, wanted: int) -> object:
    block = getattr(body, "key_block", None)
    if block is None or block.key_format_type == wanted:
        if block is None and wanted not in (KeyFormatType.RAW, KeyFormatType.OPAQUE):
            raise _unsupported()
        return body
    if isinstance(body, PrivateKey | PublicKey):
        try:
            return asymmetric.convert(body, wanted)
        except (asymmetric.KeyFormatError, asymmetric.KeyMaterialError):
            raise _unsupported() from None
    if object_type == ObjectType.SYMMETRIC_KEY and isinstance(body, SymmetricKey):
        material = _symmetric_material(block)
        if wanted == KeyFormatType.RAW:
            value = KeyValue(key_material=material)
        elif wanted == KeyFormatType.TRANSPARENT_SYMMETRIC_KEY:
            value = KeyValue(
                key_material=Item(
                    Tag.KEY_MATERIAL, STRUCTURE, [Item(Tag.KEY, BYTE_STRING, material)]
                )
            )
        else:
            raise _unsupported()
        return SymmetricKey(
            key_block=KeyBlock(
                key_format_type=KeyFormatType(wanted),
                key_value=value,
                cryptographic_algorithm=block.cryptographic_algorithm,
                cryptographic_length=block.cryptographic_length,
            )
        )
    raise _unsupported()


def _symmetric_material(block: KeyBlock) -> bytes:
    value = block.key_value
    material = value.key_material if isinstance(value, KeyValue) else None
    if isinstance(material, bytes):
        return material
    if isinstance(material, Item):
        key = material.find(Tag.KEY)
        if key is not None and isinstance(key.value, bytes):
            return key.value
    raise _unsupported()


def _unsupported() -> KmipError:
    return KmipError(
        ResultReason.KEY_FORMAT_TYPE_NOT_SUPPORTED,
        "the object cannot be returned in that Key Format Type",
    )
