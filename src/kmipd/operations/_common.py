"""Helpers shared by the operation modules."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from kmipd.model.attribute_set import AttributeSet
from kmipd.model.lifecycle import DESTROYED_STATES
from kmipd.model.searchable import indexable
from kmipd.protocol import tables
from kmipd.protocol._generated import (
    HashingAlgorithm,
    ObjectType,
    ProtectionStorageMask,
    ResultReason,
    RNGAlgorithm,
    State,
    Tag,
)
from kmipd.protocol.attributes import Attribute, attribute_tag
from kmipd.protocol.objects import Certificate, KeyValue, OpaqueObject, SecretData
from kmipd.protocol.payloads import requested_attributes
from kmipd.protocol.tables import Version
from kmipd.protocol.ttlv import (
    BOOLEAN,
    BYTE_STRING,
    DATE_TIME,
    ENUMERATION,
    INTEGER,
    STRUCTURE,
    TEXT_STRING,
    Item,
)
from kmipd.service.context import RequestContext
from kmipd.service.errors import ConcurrentUpdate, KmipError
from kmipd.service.repository import ManagedObject
from kmipd.store.records import ObjectQuery

T = TypeVar("T")

# How often a read-modify-write is tried when concurrent requests keep changing the object.
UPDATE_ATTEMPTS = 5


def resolve_uid(ctx: RequestContext, value: str | Item | None) -> str:
    """The UID a request names, or the batch's ID Placeholder when it names none."""
    if isinstance(value, str) and value:
        return value
    if value is None or isinstance(value, Item):
        # Absent (1.x) or an ID Placeholder enumeration (2.x): the previous result.
        if ctx.id_placeholder is not None:
            return ctx.id_placeholder
        raise KmipError(
            ResultReason.MISSING_DATA if value is None else ResultReason.INVALID_FIELD,
            "no Unique Identifier given and no ID Placeholder from an earlier batch item",
        )
    raise KmipError(ResultReason.INVALID_FIELD, "the Unique Identifier is empty")


async def load(
    ctx: RequestContext, value: str | Item | None, *, body: bool = False
) -> ManagedObject:
    obj = await ctx.objects.get(ctx.instance, resolve_uid(ctx, value), load_body=False)
    stored_state = obj.state
    apply_dates(obj, ctx.now)
    if obj.state != stored_state:
        # A date was reached: write the new state, so that the inventory (HTTPS and Key
        # Protect APIs, which read the stored row) and every node agree with what KMIP
        # answers. A concurrent writer that got there first wrote it, or the next read will.
        touch(obj, ctx.now)
        with contextlib.suppress(ConcurrentUpdate):
            await ctx.objects.save(obj, ctx.now)
    if body:
        await load_body(ctx, obj)
    return obj


async def load_body(ctx: RequestContext, obj: ManagedObject) -> None:
    """Unseal the key material of an object :func:`load` returned without it."""
    if obj.state in DESTROYED_STATES:
        raise KmipError(ResultReason.OBJECT_DESTROYED, "the object was destroyed")
    await ctx.objects.load_body(obj)


async def update(
    ctx: RequestContext,
    value: str | Item | None,
    change: Callable[[ManagedObject], T],
    *,
    destroy_body: bool = False,
) -> tuple[ManagedObject, T]:
    """Load the object, ``change`` it, stamp and save it; again if another request won.

    vCenter runs its steps on parallel connections: it activates a key on one while it tags
    the same key on another (captured, vcenter-capture s54/s55), and the hosts of a vSAN
    cluster fetch one KEK at once. A lost compare-and-swap must not fail such a request.
    ``change`` must only touch ``obj`` (it may run more than once).
    """
    for attempt in range(1, UPDATE_ATTEMPTS + 1):
        obj = await load(ctx, value)
        result = change(obj)
        apply_dates(obj, ctx.now)  # a date the change set may already have passed
        _track_protection(obj)
        touch(obj, ctx.now)
        try:
            await ctx.objects.save(obj, ctx.now, destroy_body=destroy_body)
        except ConcurrentUpdate:
            if attempt == UPDATE_ATTEMPTS:
                raise
            continue
        return obj, result
    raise AssertionError("not reached")


def _track_protection(obj: ManagedObject) -> None:
    """Always Sensitive and Never Extractable hold only while Sensitive stayed True and
    Extractable stayed False (KMIP 1.4 §3.49-3.50): once either flag is lifted, for good."""
    attributes = obj.attributes
    if attributes.value("Always Sensitive") is True and attributes.value("Sensitive") is not True:
        attributes.set("Always Sensitive", False, BOOLEAN)
    if (
        attributes.value("Never Extractable") is True
        and attributes.value("Extractable") is not False
    ):
        attributes.set("Never Extractable", False, BOOLEAN)


def apply_dates(obj: ManagedObject, now: int) -> None:
    """Date-driven transitions: Activation Date reached, Deactivation Date reached."""
    if obj.state == State.PRE_ACTIVE:
        activation = obj.attributes.value("Activation Date")
        if isinstance(activation, int) and activation <= now:
            obj.state = State.ACTIVE
    if obj.state == State.ACTIVE:
        deactivation = obj.attributes.value("Deactivation Date")
        if isinstance(deactivation, int) and deactivation <= now:
            obj.state = State.DEACTIVATED


def touch(obj: ManagedObject, now: int) -> None:
    obj.attributes.set("Last Change Date", now, DATE_TIME)


def all_attributes(obj: ManagedObject, version: Version | None = None) -> list[Attribute]:
    """Every attribute of ``obj``: the ones kept in columns first, then the stored ones.

    With ``version``, only the attributes that version defines (and custom ones): a 1.0
    client is not shown the 1.4 Sensitive attribute or 2.x Short Unique Identifier.
    """
    synthesized = [
        Attribute("Unique Identifier", obj.uid, None, TEXT_STRING),
        Attribute("Object Type", ObjectType(obj.object_type), None, ENUMERATION),
        Attribute("State", State(obj.state), None, ENUMERATION),
    ]
    if version is None or version >= (2, 0):
        synthesized.append(
            Attribute(
                "Short Unique Identifier",
                hashlib.sha256(obj.uid.encode()).digest(),
                None,
                BYTE_STRING,
            )
        )
    stored = [a for a in obj.attributes if a.name not in _SYNTHESIZED]
    # Indexes are per attribute name; the synthesized ones are single-valued.
    result = [Attribute(a.name, a.value, 0, a.type) for a in synthesized] + stored
    if version is not None:
        result = [
            shown
            for a in result
            if attribute_in_version(a.name, version)
            and (shown := value_in_version(a, version)) is not None
        ]
    return result


def value_in_version(attribute: Attribute, version: Version) -> Attribute | None:
    """``attribute`` as ``version`` can carry it, or None when it cannot.

    A value stored by a newer client may hold what an older version does not define: a 2.x
    enumeration value (Link Type Wrapping Key Link), a field of a structure, a bit of a mask
    (Cryptographic Usage Mask Authenticate). Such an instance is left out (a mask loses the
    bits only); values no version defines (extensions) are kept.
    """
    tag = attribute_tag(attribute.name)
    if tag is None:
        return attribute
    value = attribute.value
    if isinstance(value, Item):
        return attribute if _item_in_version(value, version) else None
    enum = tables.enum_for_tag(tag)
    if enum is None or isinstance(value, bool) or not isinstance(value, int):
        return attribute
    if enum.is_mask:
        newer = _mask_bits(enum, None) & ~_mask_bits(enum, version)
        if value & newer:
            return Attribute(attribute.name, value & ~newer, attribute.index, attribute.type)
        return attribute
    if enum.variant(value) is not None and enum.variant(value, version) is None:
        return None
    return attribute


def _mask_bits(enum: tables.EnumDef, version: Version | None) -> int:
    bits = 0
    for variant in enum.variants(version):
        bits |= variant.value
    return bits


def _item_in_version(item: Item, version: Version) -> bool:
    if tables.tag_def(item.tag) is not None and tables.tag_def(item.tag, version) is None:
        return False
    if item.type == STRUCTURE:
        return all(_item_in_version(child, version) for child in item.value)
    if item.type in (ENUMERATION, INTEGER) and isinstance(item.value, int):
        enum = tables.enum_for_tag(item.tag)
        if enum is None:
            return True
        if enum.is_mask:
            return not item.value & _mask_bits(enum, None) & ~_mask_bits(enum, version)
        return enum.variant(item.value) is None or enum.variant(item.value, version) is not None
    return True


# Attributes whose tag is older than the attribute (a field first, an attribute later).
_ATTRIBUTE_SINCE: dict[str, Version] = {"Key Format Type": (2, 0)}


def attribute_in_version(name: str, version: Version) -> bool:
    """Does KMIP ``version`` define attribute ``name``? Custom attributes: always."""
    tag = attribute_tag(name)
    if tag is None:
        return True
    since = _ATTRIBUTE_SINCE.get(name)
    if since is not None and version < since:
        return False
    return tables.tag_def(tag, version) is not None


def server_attributes(stored: AttributeSet, body: Any, now: int, *, generated: bool) -> None:
    """The attributes the server sets on a new object (KMIP 1.1-2.1), kept for every version
    and shown to each client as its version defines them (:func:`all_attributes`).

    ``generated``: the key material was made here (Create, ReKey), not supplied (Register).
    """
    digest = digest_attribute(body)
    if digest is not None:
        stored.delete("Digest")
        stored.add(digest)
    stored.set("Original Creation Date", now, DATE_TIME)
    if "Fresh" not in stored:
        stored.set("Fresh", True, BOOLEAN)
    block = getattr(body, "key_block", None)
    if block is not None:
        if block.key_format_type is not None:
            stored.set("Key Format Type", block.key_format_type, ENUMERATION)
        if "Sensitive" not in stored:
            stored.set("Sensitive", False, BOOLEAN)
        if "Extractable" not in stored:
            stored.set("Extractable", True, BOOLEAN)
        stored.set("Always Sensitive", stored.value("Sensitive") is True, BOOLEAN)
        stored.set("Never Extractable", stored.value("Extractable") is False, BOOLEAN)
    # Bodies are sealed in software (AES-GCM under the instance wrapping key).
    stored.set("Protection Storage Mask", ProtectionStorageMask.SOFTWARE, INTEGER)
    if generated:
        # The operating system's CSPRNG (Python ``secrets``): no KMIP RNG algorithm to claim.
        rng = Item(
            Tag.RANDOM_NUMBER_GENERATOR,
            STRUCTURE,
            [Item(Tag.RNG_ALGORITHM, ENUMERATION, RNGAlgorithm.UNSPECIFIED)],
        )
        stored.set("Random Number Generator", rng, STRUCTURE)


_SYNTHESIZED = frozenset(("Unique Identifier", "Object Type", "State"))


def attribute_names(obj: ManagedObject, version: Version | None = None) -> list[str]:
    seen: dict[str, None] = {}
    for attribute in all_attributes(obj, version):
        seen.setdefault(attribute.name, None)
    return list(seen)


def new_attribute_set(attributes: list[Attribute], now: int) -> AttributeSet:
    result = AttributeSet(attributes)
    result.set("Initial Date", now, DATE_TIME)
    result.set("Last Change Date", now, DATE_TIME)
    return result


def first(values: list[Any]) -> Any:
    return values[0] if values else None


def key_material(body: Any) -> bytes | None:
    """The bytes a Digest is computed over: Raw/Opaque key material, a certificate; None for
    structured (Transparent) or wrapped material.

    Secret Data (passwords) and Opaque Objects get no Digest: attributes are stored
    unencrypted, and an unsalted SHA-256 of a low-entropy secret could be guessed offline
    by anyone who reads the database.
    """
    if isinstance(body, OpaqueObject | SecretData):
        return None
    if isinstance(body, Certificate):
        return body.certificate_value
    block = getattr(body, "key_block", None)
    if block is None or block.key_wrapping_data is not None:
        return None
    value = block.key_value
    material = value.key_material if isinstance(value, KeyValue) else None
    return material if isinstance(material, bytes) else None


def digest_attribute(body: Any) -> Attribute | None:
    """The Digest attribute (SHA-256) of an object's material, when it has plain bytes."""
    material = key_material(body)
    if material is None:
        return None
    children = [
        Item(Tag.HASHING_ALGORITHM, ENUMERATION, HashingAlgorithm.SHA_256),
        Item(Tag.DIGEST_VALUE, BYTE_STRING, hashlib.sha256(material).digest()),
    ]
    block = getattr(body, "key_block", None)
    if block is not None and block.key_format_type is not None:
        children.append(Item(Tag.KEY_FORMAT_TYPE, ENUMERATION, block.key_format_type))
    return Attribute("Digest", Item(Tag.DIGEST, STRUCTURE, children), None, STRUCTURE)


def name_values(attributes: list[Attribute] | AttributeSet) -> list[str]:
    names = []
    for attribute in attributes:
        if attribute.name == "Name" and isinstance(attribute.value, Item):
            value = attribute.value.find(Tag.NAME_VALUE)
            if value is not None and isinstance(value.value, str):
                names.append(value.value)
    return names


async def check_unique_names(ctx: RequestContext, names: list[str], uid: str | None) -> None:
    """A Name is unique among the instance's objects that are not destroyed (KMIP 2.1
    §4.41); ``uid`` is the object being changed, which may keep its own name."""
    for name in names:
        for other in await ctx.objects.find(ObjectQuery(ctx.instance, name=name)):
            if other.uid != uid and other.state not in DESTROYED_STATES:
                raise KmipError(
                    ResultReason.NON_UNIQUE_NAME_ATTRIBUTE,
                    "another object already has this Name",
                )
        if await _name_in_use(ctx, name, uid):
            raise KmipError(
                ResultReason.NON_UNIQUE_NAME_ATTRIBUTE, "another object already has this Name"
            )


async def _name_in_use(ctx: RequestContext, name: str, uid: str | None) -> bool:
    """Names beyond the first of an object are not indexed: look at the attribute sets of
    the objects whose stored attributes hold the name's text at all."""
    candidates = ObjectQuery(ctx.instance, contains=(name,) if indexable(name) else ())
    for other in await ctx.objects.find(candidates):
        if other.uid == uid or other.state in DESTROYED_STATES:
            continue
        if other.attributes.count("Name") > 1 and name in name_values(other.attributes):
            return True
    return False


async def template_attributes(ctx: RequestContext, payload: Any) -> list[Attribute]:
    """The attributes of a 1.x Create/Register/ReKey request with its Templates applied.

    A 1.x ``TemplateAttribute`` may name Template objects (deprecated in 1.3, gone in 2.0);
    their attributes come first, and the request's own attributes replace single-valued
    ones of the same name.
    """
    own = requested_attributes(payload)
    template = getattr(payload, "template_attribute", None)
    names = [] if template is None else list(template.names)
    if not names:
        return own
    merged: list[Attribute] = []
    for name in names:
        value = name.find(Tag.NAME_VALUE) if isinstance(name, Item) else None
        if value is None or not isinstance(value.value, str):
            raise KmipError(ResultReason.INVALID_FIELD, "a template is named without a value")
        found = [
            o
            for o in await ctx.objects.find(
                ObjectQuery(ctx.instance, object_types=(int(ObjectType.TEMPLATE),))
            )
            if value.value in name_values(o.attributes)
        ]
        if not found:
            raise KmipError(ResultReason.ITEM_NOT_FOUND, "no Template with this Name")
        body = await ctx.objects.load_body(found[0])
        merged.extend(a for a in body.attributes if a.name != "Name")
    given = {a.name for a in own}
    kept = [a for a in merged if a.name not in given or a.name.startswith(("x-", "y-"))]
    return kept + own
