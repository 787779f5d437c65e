"""What the cryptographic operations share: resolving the key a request names, checking
that it may be used that way (object type, usage mask, state, protect/process dates, usage
limits), unsealing its material, and turning :class:`CryptoError` into a KMIP answer.

The cryptography itself is in :mod:`kmipd.crypto` (sans I/O).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum

from kmipd.crypto.errors import CryptoError
from kmipd.crypto.params import CryptoParams, parse
from kmipd.crypto.streams import IDLE_SECONDS as STREAMS_IDLE_SECONDS
from kmipd.crypto.streams import STREAMS, OpenStream
from kmipd.crypto.symmetric import Sealed, begin
from kmipd.keys import asymmetric
from kmipd.operations._common import load, load_body, resolve_uid, update
from kmipd.protocol import tables
from kmipd.protocol._generated import (
    CryptographicUsageMask,
    ObjectType,
    Operation,
    ResultReason,
    State,
    Tag,
    UsageLimitsUnit,
)
from kmipd.protocol.crypto_payloads import DecryptRequest, EncryptRequest
from kmipd.protocol.objects import KeyBlock, KeyValue
from kmipd.protocol.ttlv import LONG_INTEGER, STRUCTURE, Item
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError
from kmipd.service.repository import ManagedObject

Mask = CryptographicUsageMask


class Direction(Enum):
    """Applying protection (Encrypt, Sign, MAC) or processing protected data (Decrypt,
    Signature Verify, MAC Verify): KMIP 1.4 §3.22, 2.1 §4.57 treat them differently."""

    PROTECT = "protect"
    PROCESS = "process"


@dataclass(frozen=True, slots=True)
class Use:
    mask: Mask
    direction: Direction
    object_types: frozenset[ObjectType]
    name: str  # for messages: "encrypt", "verify"...


SYMMETRIC = frozenset({ObjectType.SYMMETRIC_KEY})
ENCRYPT = Use(
    Mask.ENCRYPT,
    Direction.PROTECT,
    frozenset({ObjectType.SYMMETRIC_KEY, ObjectType.PUBLIC_KEY}),
    "encrypt",
)
DECRYPT = Use(
    Mask.DECRYPT,
    Direction.PROCESS,
    frozenset({ObjectType.SYMMETRIC_KEY, ObjectType.PRIVATE_KEY}),
    "decrypt",
)
SIGN = Use(Mask.SIGN, Direction.PROTECT, frozenset({ObjectType.PRIVATE_KEY}), "sign")
VERIFY = Use(Mask.VERIFY, Direction.PROCESS, frozenset({ObjectType.PUBLIC_KEY}), "verify")
MAC_GENERATE = Use(Mask.MAC_GENERATE, Direction.PROTECT, SYMMETRIC, "compute a MAC")
MAC_VERIFY = Use(Mask.MAC_VERIFY, Direction.PROCESS, SYMMETRIC, "verify a MAC")

# Deactivated keys may still process (decrypt, verify) what they protected, never protect.
_USABLE_STATES = {
    Direction.PROTECT: frozenset({State.ACTIVE}),
    Direction.PROCESS: frozenset({State.ACTIVE, State.DEACTIVATED}),
}


@dataclass(slots=True)
class UsableKey:
    """A key checked for one use, with its unsealed key block."""

    obj: ManagedObject
    block: KeyBlock = field(repr=False)
    params: CryptoParams  # the key's own Cryptographic Parameters attribute

    @property
    def algorithm(self) -> int | None:
        return self.block.cryptographic_algorithm

    def secret(self) -> bytes:
        """The material of a symmetric key."""
        return _material(self.block)

    def private_key(self) -> asymmetric.PrivateKeyObject:
        # Stored material was checked when stored; RSA validation again would hold the
        # GIL for about 0.6 s per Sign or Decrypt with a 4096-bit key.
        with _key_errors():
            return asymmetric.load_private(self.block, checked=True)

    def public_key(self) -> asymmetric.PublicKeyObject:
        with _key_errors():
            return asymmetric.load_public(self.block)


@contextmanager
def _key_errors() -> Iterator[None]:
    try:
        yield
    except asymmetric.KeyFormatError as exc:
        raise KmipError(ResultReason.KEY_FORMAT_TYPE_NOT_SUPPORTED, str(exc)) from None
    except asymmetric.KeyMaterialError as exc:
        raise KmipError(ResultReason.CRYPTOGRAPHIC_FAILURE, f"the stored key: {exc}") from None


async def usable_key(
    ctx: RequestContext, unique_identifier: str | Item | None, use: Use, amount: int
) -> UsableKey:
    """The key ``unique_identifier`` names, if it may be used for ``use`` on ``amount`` bytes
    now; its usage limits are checked here and consumed by :func:`consume`."""
    obj = await load(ctx, unique_identifier)
    if obj.object_type not in use.object_types:
        raise KmipError(ResultReason.INVALID_OBJECT_TYPE, f"this object type cannot {use.name}")
    mask = obj.attributes.value("Cryptographic Usage Mask")
    if not isinstance(mask, int) or not mask & use.mask:
        raise KmipError(
            ResultReason.INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK,
            f"the key's Cryptographic Usage Mask does not allow it to {use.name}",
        )
    if obj.state not in _USABLE_STATES[use.direction]:
        raise KmipError(
            ResultReason.WRONG_KEY_LIFECYCLE_STATE,
            f"the key is {State(obj.state).name.replace('_', ' ').title()}; it cannot {use.name}",
        )
    _check_dates(obj, use, ctx.now)
    _remaining_uses(obj, amount)
    await load_body(ctx, obj)
    block: KeyBlock | None = getattr(obj.body, "key_block", None)
    if block is None:
        raise KmipError(ResultReason.INVALID_OBJECT_TYPE, "the object holds no key")
    if block.key_wrapping_data is not None:
        raise KmipError(
            ResultReason.FEATURE_NOT_SUPPORTED, "the key is stored wrapped; it cannot be used"
        )
    own = obj.attributes.value("Cryptographic Parameters")
    with crypto_errors():
        params = parse(own if isinstance(own, Item) else None)
    return UsableKey(obj, block, params)


def _check_dates(obj: ManagedObject, use: Use, now: int) -> None:
    """Protect Stop Date and Process Start Date (KMIP 1.4 §3.25-3.26)."""
    if use.direction is Direction.PROTECT:
        stop = obj.attributes.value("Protect Stop Date")
        if isinstance(stop, int) and stop <= now:
            raise KmipError(
                ResultReason.WRONG_KEY_LIFECYCLE_STATE,
                f"the key's Protect Stop Date has passed; it cannot {use.name}",
            )
    else:
        start = obj.attributes.value("Process Start Date")
        if isinstance(start, int) and start > now:
            raise KmipError(
                ResultReason.WRONG_KEY_LIFECYCLE_STATE,
                f"the key's Process Start Date has not come; it cannot {use.name}",
            )


def _usage(obj: ManagedObject, amount: int) -> tuple[Item, int, int] | None:
    """(limits, remaining count, what this request uses) when the key has Usage Limits."""
    limits = obj.attributes.value("Usage Limits")
    if not isinstance(limits, Item) or limits.type != STRUCTURE:
        return None
    total = limits.find(Tag.USAGE_LIMITS_TOTAL)
    count = limits.find(Tag.USAGE_LIMITS_COUNT)
    unit = limits.find(Tag.USAGE_LIMITS_UNIT)
    remaining = count.value if count is not None else total.value if total is not None else 0
    used = 1 if unit is not None and unit.value == UsageLimitsUnit.OBJECT else amount
    return limits, int(remaining), used


def _remaining_uses(obj: ManagedObject, amount: int) -> None:
    usage = _usage(obj, amount)
    if usage is not None and usage[2] > usage[1]:
        # Permission Denied, as the CS-BC profile expects (CS-BC-M-7, 1.x and 2.x).
        raise KmipError(ResultReason.PERMISSION_DENIED, "the key's Usage Limits are used up")


async def consume(ctx: RequestContext, key: UsableKey, amount: int) -> None:
    """Count ``amount`` against the key's Usage Limits (KMIP 1.4 §3.21), if it has any: the
    server keeps Usage Limits Count, the remaining allowance."""
    if _usage(key.obj, amount) is None:
        return

    def take(obj: ManagedObject) -> None:
        usage = _usage(obj, amount)
        if usage is None:
            return
        limits, remaining, used = usage
        if used > remaining:
            raise KmipError(ResultReason.PERMISSION_DENIED, "the key's Usage Limits are used up")
        children = [c for c in limits.value if c.tag != Tag.USAGE_LIMITS_COUNT]
        children.append(Item(Tag.USAGE_LIMITS_COUNT, LONG_INTEGER, remaining - used))
        obj.attributes.set("Usage Limits", Item(Tag.USAGE_LIMITS, STRUCTURE, children), STRUCTURE)

    await update(ctx, key.obj.uid, take)


def _material(block: KeyBlock) -> bytes:
    value = block.key_value
    material = value.key_material if isinstance(value, KeyValue) else None
    if isinstance(material, bytes):
        return material
    if isinstance(material, Item):  # Transparent Symmetric Key
        key = material.find(Tag.KEY)
        if key is not None and isinstance(key.value, bytes):
            return key.value
    raise KmipError(
        ResultReason.KEY_FORMAT_TYPE_NOT_SUPPORTED,
        "server-side use of a key in this Key Format Type is not supported",
    )


def request_params(requested: Item | None, key: UsableKey) -> CryptoParams:
    """The request's Cryptographic Parameters over the key's own."""
    with crypto_errors():
        return parse(requested).over(key.params)


def is_multipart(
    correlation_value: bytes | None, init_indicator: bool | None, final_indicator: bool | None
) -> bool:
    """A part of a multi-part operation, not the whole (both indicators set: the whole)."""
    return correlation_value is not None or bool(init_indicator) != bool(final_indicator)


@dataclass(slots=True)
class Part:
    """What one part of a multi-part Encrypt or Decrypt answers."""

    uid: str
    output: Sealed
    correlation_value: bytes | None  # None once the last part is done


async def cipher_part(
    ctx: RequestContext, request: EncryptRequest | DecryptRequest, use: Use
) -> Part:
    """One part of a multi-part Encrypt or Decrypt (AES or Triple DES). The key is checked
    again for every part: revoking it stops a stream, and each part counts against its
    Usage Limits."""
    data = require_data(request.data)
    operation = Operation.ENCRYPT if use is ENCRYPT else Operation.DECRYPT
    correlation = request.correlation_value
    if correlation is None:
        if not request.init_indicator:
            raise KmipError(
                ResultReason.INVALID_MESSAGE,
                "a part after the first needs the Correlation Value of the first answer",
            )
        key = await usable_key(ctx, request.unique_identifier, use, len(data))
        if key.obj.object_type != ObjectType.SYMMETRIC_KEY:
            raise KmipError(
                ResultReason.FEATURE_NOT_SUPPORTED, "multi-part operations need a symmetric key"
            )
        params = request_params(request.cryptographic_parameters, key)
        with crypto_errors():
            cipher = begin(
                key.algorithm or 0,
                key.secret(),
                params,
                request.iv_counter_nonce,
                request.authenticated_encryption_additional_data,
                encrypting=use is ENCRYPT,
                multipart=True,
            )
        stream = OpenStream(operation, key.obj.uid, cipher, ctx.now)
        first_iv = cipher.chosen_iv
    else:
        if request.init_indicator:
            raise KmipError(
                ResultReason.INVALID_MESSAGE, "Init Indicator starts a stream: no Correlation Value"
            )
        found = STREAMS.take(ctx.instance, correlation, ctx.now)
        if found is None or found.operation != operation:
            raise KmipError(
                ResultReason.INVALID_CORRELATION_VALUE
                if ctx.version >= (2, 0)
                else ResultReason.INVALID_FIELD,
                "no open multi-part operation has this Correlation Value (it finished, was "
                f"idle over {STREAMS_IDLE_SECONDS} s, or began on another node)",
            )
        stream = found
        if request.unique_identifier is not None and (
            resolve_uid(ctx, request.unique_identifier) != stream.uid
        ):
            raise KmipError(ResultReason.INVALID_FIELD, "the stream was begun with another key")
        key = await usable_key(ctx, stream.uid, use, len(data))
        first_iv = None
    with crypto_errors():
        out = stream.cipher.update(data)
        last = (
            stream.cipher.finish(
                request.authenticated_encryption_tag
                if isinstance(request, DecryptRequest)
                else None
            )
            if request.final_indicator
            else None
        )
    await consume(ctx, key, len(data))
    if last is not None:
        return Part(stream.uid, Sealed(out + last.data, first_iv or last.iv, last.tag), None)
    stream.last_used = ctx.now
    if correlation is None:
        correlation = STREAMS.open(ctx.instance, stream)
    else:
        STREAMS.keep(ctx.instance, correlation, stream)
    return Part(stream.uid, Sealed(out, first_iv), correlation)


def refuse_streaming(
    correlation_value: bytes | None, init_indicator: bool | None, final_indicator: bool | None
) -> None:
    """Only Encrypt and Decrypt take data in parts: the other operations refuse a part
    precisely rather than answer it as if it were the whole."""
    if is_multipart(correlation_value, init_indicator, final_indicator):
        raise KmipError(
            ResultReason.FEATURE_NOT_SUPPORTED,
            "this operation does not take data in parts (Init Indicator, Final Indicator, "
            "Correlation Value): send the whole data in one request",
        )


_OPERATIONS = tables.enum_def("Operation")


def require_version(ctx: RequestContext, operation: Operation) -> None:
    """The cryptographic operations came with KMIP 1.2: a 1.0 or 1.1 request naming one is
    answered as an operation its version does not have (Query does not list them there)."""
    if _OPERATIONS is not None and _OPERATIONS.variant(operation, ctx.version) is None:
        major, minor = ctx.version
        raise KmipError(
            ResultReason.OPERATION_NOT_SUPPORTED,
            f"{operation.name.replace('_', ' ').title()} is not a KMIP {major}.{minor} "
            "operation: send it in KMIP 1.2 or later",
        )


def require_data(data: bytes | None, name: str = "Data") -> bytes:
    if data is None:
        raise KmipError(ResultReason.INVALID_MESSAGE, f"the request has no {name}")
    return data


@contextmanager
def crypto_errors() -> Iterator[None]:
    try:
        yield
    except CryptoError as exc:
        raise KmipError(exc.reason, exc.message) from None
