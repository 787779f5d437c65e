"""Create Key Pair: a new RSA or EC key pair, generated here (KMIP 1.4 §4.2, 2.1 §6.1.4).

RSA keys of 2048, 3072 or 4096 bits; EC keys on P-256, P-384 or (named) secp256k1 (EC,
ECDSA or ECDH; the curve from a Recommended Curve in Cryptographic Domain Parameters, or from
the Cryptographic Length). The common attributes apply to both keys; the private or public
key's own attributes replace common ones of the same name. Both keys belong to the client's
instance, start Pre-Active, and are linked to each other (Private Key Link, Public Key Link).
"""

from __future__ import annotations

from dataclasses import dataclass

from kmipd.keys import asymmetric, rsa_worker
from kmipd.model.attribute_set import AttributeSet
from kmipd.operations._attributes import check_client_attributes
from kmipd.operations._common import (
    apply_dates,
    check_unique_names,
    name_values,
    new_attribute_set,
    server_attributes,
    template_attributes,
)
from kmipd.operations.rekey import link
from kmipd.protocol._generated import (
    CryptographicAlgorithm,
    LinkType,
    ObjectType,
    Operation,
    RecommendedCurve,
    ResultReason,
    State,
    Tag,
)
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import PrivateKey, PublicKey
from kmipd.protocol.payloads import CreateKeyPairRequest, CreateKeyPairResponse
from kmipd.protocol.ttlv import ENUMERATION, INTEGER, Item
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError
from kmipd.service.repository import ManagedObject, new_uid

OPERATION = Operation.CREATE_KEY_PAIR

A = CryptographicAlgorithm
# Asymmetric algorithms kmipd knows but does not generate keys for.
_NOT_GENERATED = frozenset((A.DSA, A.DH, A.ECMQV, A.ED25519, A.ED448))


@dataclass(slots=True)
class _Part:
    """One of the three attribute sets of the request, in the shape
    :func:`template_attributes` reads (1.x template attribute or 2.x attributes)."""

    attributes: list[Attribute] | None
    template_attribute: TemplateAttribute | None


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What to generate: the algorithm as the client named it, and the RSA length or curve."""

    algorithm: int
    length: int
    curve: RecommendedCurve | None = None


async def handle(ctx: RequestContext, request: CreateKeyPairRequest) -> CreateKeyPairResponse:
    common = await template_attributes(
        ctx, _Part(request.common_attributes, request.common_template_attribute)
    )
    private_own = await template_attributes(
        ctx, _Part(request.private_key_attributes, request.private_key_template_attribute)
    )
    public_own = await template_attributes(
        ctx, _Part(request.public_key_attributes, request.public_key_template_attribute)
    )
    private_attributes = _merge(common, private_own)
    public_attributes = _merge(common, public_own)
    check_client_attributes(private_attributes)
    check_client_attributes(public_attributes)
    private_names, public_names = name_values(private_attributes), name_values(public_attributes)
    if set(private_names) & set(public_names):
        raise KmipError(
            ResultReason.NON_UNIQUE_NAME_ATTRIBUTE,
            "the private and the public key cannot have the same Name (give Names in the "
            "private and public key attributes, not the common ones)",
        )
    await check_unique_names(ctx, private_names + public_names, None)

    private_stored = new_attribute_set(private_attributes, ctx.now)
    public_stored = new_attribute_set(public_attributes, ctx.now)
    spec = key_spec(private_stored)
    if key_spec(public_stored) != spec:
        raise KmipError(
            ResultReason.INVALID_FIELD,
            "the private and public key attributes ask for different keys",
        )
    private_key = await _generate(spec)
    public_key = private_key.public_key()
    private_body = asymmetric.private_key_object(
        private_key, spec.algorithm, asymmetric.stored_private_format(private_key)
    )
    public_body = asymmetric.public_key_object(
        public_key, spec.algorithm, asymmetric.stored_public_format(public_key)
    )
    private_uid, public_uid = new_uid(), new_uid()
    for stored, body, other, link_type in (
        (private_stored, private_body, public_uid, LinkType.PUBLIC_KEY_LINK),
        (public_stored, public_body, private_uid, LinkType.PRIVATE_KEY_LINK),
    ):
        block = body.key_block
        assert block is not None
        stored.set("Cryptographic Algorithm", spec.algorithm, ENUMERATION)
        stored.set("Cryptographic Length", block.cryptographic_length, INTEGER)
        server_attributes(stored, body, ctx.now, generated=True)
        stored.add(link(link_type, other))

    private = await _create(ctx, ObjectType.PRIVATE_KEY, private_body, private_stored, private_uid)
    try:
        await _create(ctx, ObjectType.PUBLIC_KEY, public_body, public_stored, public_uid)
    except Exception:
        # No private key without its public key.
        await ctx.objects.discard(private)
        raise
    return CreateKeyPairResponse(
        private_key_unique_identifier=private_uid, public_key_unique_identifier=public_uid
    )


def _merge(common: list[Attribute], own: list[Attribute]) -> list[Attribute]:
    """The common attributes, with those the key's own attributes name replaced."""
    named = {a.name for a in own}
    return [a for a in common if a.name not in named] + own


def key_spec(stored: AttributeSet) -> KeySpec:
    """Check the requested algorithm, length and curve; what to generate."""
    algorithm = stored.value("Cryptographic Algorithm")
    length = stored.value("Cryptographic Length")
    domain = stored.value("Cryptographic Domain Parameters")
    if algorithm is None:
        raise KmipError(
            ResultReason.MISSING_DATA, "a key pair needs a Cryptographic Algorithm (RSA or EC)"
        )
    if not _is_integer(algorithm):
        raise KmipError(ResultReason.INVALID_FIELD, "the Cryptographic Algorithm is malformed")
    if length is not None and not _is_integer(length):
        raise KmipError(ResultReason.INVALID_FIELD, "the Cryptographic Length is malformed")
    bits = None if length is None else int(length)
    if algorithm == A.RSA:
        if bits is None:
            raise KmipError(
                ResultReason.MISSING_DATA, "an RSA key pair needs a Cryptographic Length"
            )
        if bits not in asymmetric.RSA_LENGTHS:
            raise KmipError(
                ResultReason.INVALID_FIELD,
                "RSA key pairs are generated with 2048, 3072 or 4096 bits",
            )
        return KeySpec(A.RSA, bits)
    if algorithm in asymmetric.EC_ALGORITHMS:
        curve = _curve(domain, bits)
        return KeySpec(int(algorithm), curve_length(curve), curve)
    if algorithm in _NOT_GENERATED:
        raise KmipError(
            ResultReason.FEATURE_NOT_SUPPORTED,
            "kmipd generates RSA and EC key pairs only",
        )
    raise KmipError(
        ResultReason.INVALID_FIELD,
        "this Cryptographic Algorithm has no key pairs; use RSA or EC",
    )


def _curve(domain: object, length: int | None) -> RecommendedCurve:
    curve: RecommendedCurve | None = None
    if isinstance(domain, Item):
        found = domain.find(Tag.RECOMMENDED_CURVE)
        if found is not None:
            if not _is_integer(found.value) or found.value not in asymmetric.CURVES:
                raise KmipError(
                    ResultReason.INVALID_FIELD,
                    "EC key pairs are generated on P-256, P-384 or secp256k1",
                )
            curve = RecommendedCurve(found.value)
    if curve is None:
        if length is None:
            raise KmipError(
                ResultReason.MISSING_DATA,
                "an EC key pair needs a Cryptographic Length or a Recommended Curve",
            )
        if length not in asymmetric.CURVE_FOR_LENGTH:
            raise KmipError(
                ResultReason.INVALID_FIELD, "EC key pairs are generated with 256 or 384 bits"
            )
        return asymmetric.CURVE_FOR_LENGTH[length]
    if length is not None and length != curve_length(curve):
        raise KmipError(
            ResultReason.INVALID_FIELD,
            "the Cryptographic Length does not match the Recommended Curve",
        )
    return curve


def _is_integer(value: object) -> bool:
    """An Integer or Enumeration value: a client may send any item type under any name."""
    return isinstance(value, int) and not isinstance(value, bool)


def curve_length(curve: RecommendedCurve) -> int:
    return asymmetric.CURVES[curve].key_size


async def _generate(spec: KeySpec) -> asymmetric.PrivateKeyObject:
    if spec.curve is not None:
        return asymmetric.generate_ec(spec.curve)  # about a millisecond
    return await rsa_worker.generate_rsa(spec.length)


async def _create(
    ctx: RequestContext,
    object_type: ObjectType,
    body: PrivateKey | PublicKey,
    stored: AttributeSet,
    uid: str,
) -> ManagedObject:
    obj = await ctx.objects.create(
        ctx.instance, object_type, body, stored, ctx.now, State.PRE_ACTIVE, uid
    )
    apply_dates(obj, ctx.now)
    if obj.state != State.PRE_ACTIVE:  # an Activation Date in the past
        await ctx.objects.save(obj, ctx.now)
    return obj
