"""Register: store an object the client supplies (KMIP 1.4 §4.3).

Symmetric keys, secret data, opaque objects, certificates, public and private keys. What is
checked: the Object Type matches the object; a key's Cryptographic Algorithm and Length in
the attributes agree with its key block (they are copied from the key block when absent);
plain symmetric key material is as long as its Cryptographic Length says. The server-set
attributes (Digest, Certificate Type...) are added here.
"""

from __future__ import annotations

from typing import Any

from kmipd.operations._asymmetric import check_registered_key
from kmipd.operations._attributes import check_client_attributes
from kmipd.operations._certificates import certificate_attributes
from kmipd.operations._common import (
    apply_dates,
    check_unique_names,
    name_values,
    new_attribute_set,
    server_attributes,
    template_attributes,
)
from kmipd.protocol._generated import (
    CertificateType,
    CryptographicAlgorithm,
    KeyFormatType,
    ObjectType,
    Operation,
    ResultReason,
    State,
    Tag,
)
from kmipd.protocol.objects import (
    OBJECT_TYPES,
    Certificate,
    KeyBlock,
    KeyValue,
    PrivateKey,
    PublicKey,
    Template,
)
from kmipd.protocol.payloads import RegisterRequest, RegisterResponse, requested_attributes
from kmipd.protocol.ttlv import ENUMERATION, INTEGER, Item
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError

OPERATION = Operation.REGISTER

REGISTRABLE = frozenset(
    (
        ObjectType.SYMMETRIC_KEY,
        ObjectType.SECRET_DATA,
        ObjectType.OPAQUE_OBJECT,
        ObjectType.CERTIFICATE,
        ObjectType.PUBLIC_KEY,
        ObjectType.PRIVATE_KEY,
    )
)

A = CryptographicAlgorithm
# Plain key material (bytes) a symmetric key of this algorithm and length may have.
_DES3_BYTES = {112: 16, 168: 24, 192: 24}


def expected_material_bytes(algorithm: object, length: int) -> frozenset[int]:
    if algorithm == A.DES3 and length in _DES3_BYTES:
        return frozenset((_DES3_BYTES[length],))
    if algorithm == A.DES and length in (56, 64):
        return frozenset((8,))
    return frozenset((length // 8,)) if length % 8 == 0 else frozenset()


def _check_key_block(
    object_type: ObjectType, block: KeyBlock, attributes: dict[str, Any]
) -> list[tuple[str, Any, int]]:
    """Check a key block against the attributes; returns attributes to add from the block."""
    added: list[tuple[str, Any, int]] = []
    for name, block_value, typ in (
        ("Cryptographic Algorithm", block.cryptographic_algorithm, ENUMERATION),
        ("Cryptographic Length", block.cryptographic_length, INTEGER),
    ):
        given = attributes.get(name)
        if block_value is None:
            continue
        if given is None:
            added.append((name, block_value, typ))
        elif given != block_value:
            raise KmipError(
                ResultReason.INVALID_FIELD,
                f"the {name} attribute differs from the key block's",
            )
    if object_type != ObjectType.SYMMETRIC_KEY or block.key_wrapping_data is not None:
        return added
    value = block.key_value
    material = value.key_material if isinstance(value, KeyValue) else None
    if (
        isinstance(material, Item)
        and block.key_format_type == KeyFormatType.TRANSPARENT_SYMMETRIC_KEY
    ):
        key = material.find(Tag.KEY)
        material = key.value if key is not None else None
    if not isinstance(material, bytes) or not material:
        raise KmipError(ResultReason.INVALID_FIELD, "the symmetric key has no key material")
    length = attributes.get("Cryptographic Length", block.cryptographic_length)
    algorithm = attributes.get("Cryptographic Algorithm", block.cryptographic_algorithm)
    if length is None:
        added.append(("Cryptographic Length", len(material) * 8, INTEGER))
    elif len(material) not in expected_material_bytes(algorithm, length):
        raise KmipError(
            ResultReason.INVALID_FIELD,
            "the key material's length does not match the Cryptographic Length",
        )
    return added


async def handle(ctx: RequestContext, request: RegisterRequest) -> RegisterResponse:
    body = request.managed_object
    if body is None:
        raise KmipError(ResultReason.MISSING_DATA, "Register needs the object to register")
    object_type = OBJECT_TYPES.get(type(body))
    if object_type is None or request.object_type != object_type:
        raise KmipError(
            ResultReason.INVALID_OBJECT_TYPE, "the Object Type does not match the object"
        )
    if object_type == ObjectType.TEMPLATE and ctx.version < (2, 0):
        return await _register_template(ctx, request, body)
    if object_type not in REGISTRABLE:
        raise KmipError(
            ResultReason.INVALID_OBJECT_TYPE, "kmipd does not store objects of this type"
        )
    attributes = await template_attributes(ctx, request)
    check_client_attributes(attributes)
    await check_unique_names(ctx, name_values(attributes), None)
    stored = new_attribute_set(attributes, ctx.now)
    block = getattr(body, "key_block", None)
    value = block.key_value if isinstance(block, KeyBlock) else None
    if isinstance(value, KeyValue) and value.attributes is None:  # absent in a 2.x request
        value.attributes = []
    if isinstance(block, KeyBlock):
        given = {a.name: a.value for a in attributes}
        for name, value, typ in _check_key_block(object_type, block, given):
            stored.set(name, value, typ)
    if isinstance(body, PrivateKey | PublicKey):
        await check_registered_key(body, stored)
    given_type = stored.value("Certificate Type")
    if isinstance(body, Certificate) and given_type not in (None, body.certificate_type):
        raise KmipError(
            ResultReason.INVALID_FIELD, "the Certificate Type differs from the object's"
        )
    if not isinstance(body, Certificate) and given_type is not None:
        raise KmipError(ResultReason.INVALID_ATTRIBUTE, "Certificate Type is for certificates")
    if isinstance(body, Certificate) and body.certificate_type is not None:
        stored.set("Certificate Type", body.certificate_type, ENUMERATION)
        if body.certificate_value is not None:
            stored.set("Certificate Length", len(body.certificate_value), INTEGER)
            if body.certificate_type == CertificateType.X_509:
                for attribute in certificate_attributes(body.certificate_value):
                    stored.add(attribute)
    server_attributes(stored, body, ctx.now, generated=False)
    obj = await ctx.objects.create(
        ctx.instance, object_type, body, stored, ctx.now, State.PRE_ACTIVE
    )
    apply_dates(obj, ctx.now)
    if obj.state != State.PRE_ACTIVE:
        await ctx.objects.save(obj, ctx.now)
    return RegisterResponse(unique_identifier=obj.uid)


async def _register_template(
    ctx: RequestContext, request: RegisterRequest, body: Template
) -> RegisterResponse:
    """A 1.x Template: a named set of attributes for later Create/Register requests. Its
    Name may be given in the Template itself or in the request's TemplateAttribute."""
    template_attrs = list(body.attributes)
    check_client_attributes(template_attrs)
    own = requested_attributes(request)
    check_client_attributes(own)
    names = [a for a in own + template_attrs if a.name == "Name"]
    await check_unique_names(ctx, name_values(names), None)
    stored = new_attribute_set([a for a in own if a.name != "Name"] + names, ctx.now)
    obj = await ctx.objects.create(
        ctx.instance, ObjectType.TEMPLATE, body, stored, ctx.now, State.PRE_ACTIVE
    )
    return RegisterResponse(unique_identifier=obj.uid)
