"""One attribute representation for KMIP 1.x and 2.x, and its wire forms.

An :class:`Attribute` is ``(name, value, index, type)``: ``name`` is the spec attribute name
("Cryptographic Algorithm", "Name", "x-Product"); ``value`` is a Python value for simple types
(an IntEnum member or ``int`` for enumerations) or, for Structures (Name, Link, Cryptographic
Parameters...), an :class:`Item` tagged with the attribute's tag whose children are kept as
they came; ``type`` is the item type on the wire, so that re-encoding is exact.

Wire forms, chosen by the codec from the protocol version:

- 1.x ``Attribute{AttributeName, AttributeIndex?, AttributeValue}`` (:data:`ATTRIBUTE`),
  and ``TemplateAttribute{Name*, Attribute*}`` (:class:`TemplateAttribute`);
- 2.x ``Attributes{<attribute tag> ...}`` (:data:`ATTRIBUTES`) where a custom attribute
  "x-Name" is ``Attribute{VendorIdentification "x", AttributeName "Name", AttributeValue}``;
  ``NewAttribute``/``CurrentAttribute`` wrap one attribute (:data:`WRAPPED_ATTRIBUTE`);
  ``AttributeReference`` names one (:data:`ATTRIBUTE_REFERENCE`).
"""

# kmip_field() returns a dataclasses.field(); ruff cannot tell.
# ruff: noqa: RUF009

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kmipd.protocol import tables
from kmipd.protocol._generated import ResultReason, Tag
from kmipd.protocol.codec import ANY, Version, enum_class, kmip_field, tag_name
from kmipd.protocol.errors import DecodeError, EncodeError
from kmipd.protocol.ttlv import (
    BOOLEAN,
    BYTE_STRING,
    ENUMERATION,
    INTEGER,
    STRUCTURE,
    TEXT_STRING,
    Item,
    item_type_name,
)

__all__ = [
    "ATTRIBUTE",
    "ATTRIBUTES",
    "ATTRIBUTE_REFERENCE",
    "WRAPPED_ATTRIBUTE",
    "Attribute",
    "TemplateAttribute",
    "attribute_tag",
    "from_v1_item",
    "from_v2_item",
    "to_v1_item",
    "to_v2_item",
]

_V1: Version = (1, 4)


@dataclass(slots=True)
class Attribute:
    """One attribute, whatever the protocol version. ``type`` None: inferred on encoding."""

    name: str
    value: Any = None
    index: int | None = None
    type: int | None = None


@lru_cache(maxsize=1024)
def attribute_tag(name: str) -> int | None:
    """The tag of a standard attribute name (spec name or xml_name), else None."""
    return tables.tag_value(name)


def _name_of_tag(tag: int) -> str:
    defn = tables.tag_def(tag, (2, 1))
    return defn.name if defn is not None else f"0x{tag:06X}"


def _split_vendor(name: str) -> tuple[str, str] | None:
    vendor, sep, rest = name.partition("-")
    return (vendor, rest) if sep and vendor and rest else None


def _value_from_item(tag: int | None, child: Item) -> Any:
    """The Python value of an attribute value item (enumerations as IntEnum when known)."""
    typ = child.type
    if typ == STRUCTURE:
        return child if tag is None or child.tag == tag else Item(tag, STRUCTURE, child.value)
    if typ == ENUMERATION and tag is not None:
        enum_cls = enum_class(tag)
        if enum_cls is not None:
            return enum_cls._value2member_map_.get(child.value, child.value)
    return child.value


def _infer_type(value: Any) -> int:
    if isinstance(value, Item):
        return STRUCTURE
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, enum.Enum):
        return ENUMERATION
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, str):
        return TEXT_STRING
    if isinstance(value, bytes | bytearray):
        return BYTE_STRING
    raise EncodeError("attribute value has no KMIP item type; set Attribute.type")


def _value_item(tag: int, attr: Attribute) -> Item:
    typ = attr.type if attr.type is not None else _infer_type(attr.value)
    if typ == STRUCTURE:
        if not isinstance(attr.value, Item):
            raise EncodeError(f"attribute {tag_name(tag)}: a Structure value must be an Item")
        return Item(tag, STRUCTURE, attr.value.value)
    return Item(tag, typ, attr.value)


def _bad(message: str) -> DecodeError:
    return DecodeError(message, ResultReason.INVALID_FIELD)


# ---------------------------------------------------------------------------------------------
# Attribute structure (1.x; 2.x vendor attributes)


def from_v1_item(item: Item) -> Attribute:
    """Decode an ``Attribute`` structure (1.x form, or a 2.x vendor attribute)."""
    if item.type != STRUCTURE:
        raise _bad(f"{tag_name(item.tag)} is a {item_type_name(item.type)}, expected a Structure")
    name = vendor = index = value_item = None
    for child in item.value:
        tag, typ = child.tag, child.type
        if tag == Tag.ATTRIBUTE_NAME and typ == TEXT_STRING and name is None:
            name = child.value
        elif tag == Tag.ATTRIBUTE_VALUE and value_item is None:
            value_item = child
        elif tag == Tag.ATTRIBUTE_INDEX and typ == INTEGER and index is None:
            index = child.value
        elif tag == Tag.VENDOR_IDENTIFICATION and typ == TEXT_STRING and vendor is None:
            vendor = child.value
        else:
            raise _bad(f"unexpected or repeated {tag_name(tag)} in Attribute")
    if name is None:
        raise DecodeError("Attribute without AttributeName", ResultReason.INVALID_MESSAGE)
    if vendor is not None:
        name = f"{vendor}-{name}"
    if value_item is None:
        return Attribute(name, None, index, None)
    tag = None if vendor is not None else attribute_tag(name)
    return Attribute(name, _value_from_item(tag, value_item), index, value_item.type)


def to_v1_item(attr: Attribute, tag: int = Tag.ATTRIBUTE) -> Item:
    """Encode as a 1.x ``Attribute{AttributeName, AttributeIndex?, AttributeValue?}``."""
    children = [Item(Tag.ATTRIBUTE_NAME, TEXT_STRING, attr.name)]
    if attr.index is not None:
        children.append(Item(Tag.ATTRIBUTE_INDEX, INTEGER, attr.index))
    if attr.value is not None:
        children.append(_value_item(Tag.ATTRIBUTE_VALUE, attr))
    return Item(tag, STRUCTURE, children)


def _to_vendor_item(attr: Attribute, tag: int = Tag.ATTRIBUTE) -> Item:
    parts = _split_vendor(attr.name)
    children = []
    if parts is not None:
        children.append(Item(Tag.VENDOR_IDENTIFICATION, TEXT_STRING, parts[0]))
        children.append(Item(Tag.ATTRIBUTE_NAME, TEXT_STRING, parts[1]))
    else:
        children.append(Item(Tag.ATTRIBUTE_NAME, TEXT_STRING, attr.name))
    if attr.value is not None:
        children.append(_value_item(Tag.ATTRIBUTE_VALUE, attr))
    return Item(tag, STRUCTURE, children)


# ---------------------------------------------------------------------------------------------
# 2.x: one attribute as an item tagged with its own tag


def from_v2_item(item: Item) -> Attribute:
    """Decode one 2.x attribute: ``<tag>value`` or a vendor ``Attribute`` structure."""
    if item.tag == Tag.ATTRIBUTE:
        return from_v1_item(item)
    return Attribute(_name_of_tag(item.tag), _value_from_item(item.tag, item), None, item.type)


def to_v2_item(attr: Attribute) -> Item:
    """Encode one attribute in its 2.x form (standard tag, or a vendor ``Attribute``)."""
    tag = attribute_tag(attr.name)
    if tag is None:
        return _to_vendor_item(attr)
    return _value_item(tag, attr)


# ---------------------------------------------------------------------------------------------
# Field kinds for the codec


class _AttributeKind:
    """``Attribute`` structure: the 1.x form, or in 2.x a vendor attribute."""

    item_type = STRUCTURE

    def decode(self, item: Item, version: Version) -> Attribute:
        return from_v1_item(item)

    def encode(self, value: Attribute, tag: int, version: Version) -> Item:
        if version[0] >= 2 and attribute_tag(value.name) is None:
            return _to_vendor_item(value, tag)
        return to_v1_item(value, tag)


class _AttributesKind:
    """2.x ``Attributes`` (and Common/Private/Public Key Attributes): ``list[Attribute]``."""

    item_type = STRUCTURE

    def decode(self, item: Item, version: Version) -> list[Attribute]:
        return [from_v2_item(child) for child in item.value]

    def encode(self, value: list[Attribute], tag: int, version: Version) -> Item:
        return Item(tag, STRUCTURE, [to_v2_item(attr) for attr in value])


class _WrappedAttributeKind:
    """2.x ``NewAttribute`` / ``CurrentAttribute``: a structure around one attribute."""

    item_type = STRUCTURE

    def decode(self, item: Item, version: Version) -> Attribute:
        if len(item.value) != 1:
            raise DecodeError(
                f"{tag_name(item.tag)} must hold exactly one attribute",
                ResultReason.INVALID_MESSAGE,
            )
        return from_v2_item(item.value[0])

    def encode(self, value: Attribute, tag: int, version: Version) -> Item:
        return Item(tag, STRUCTURE, [to_v2_item(value)])


class _AttributeReferenceKind:
    """2.x ``AttributeReference``: an Enumeration of the attribute's tag, or a Structure
    ``{VendorIdentification, AttributeName}``; the value is the attribute name."""

    item_type = None

    def decode(self, item: Item, version: Version) -> str:
        if item.type == ENUMERATION:
            return _name_of_tag(item.value)
        if item.type != STRUCTURE:
            raise _bad(f"AttributeReference is a {item_type_name(item.type)}")
        vendor = name = None
        for child in item.value:
            if child.tag == Tag.VENDOR_IDENTIFICATION and child.type == TEXT_STRING:
                vendor = child.value
            elif child.tag == Tag.ATTRIBUTE_NAME and child.type == TEXT_STRING:
                name = child.value
            else:
                raise _bad(f"unexpected {tag_name(child.tag)} in AttributeReference")
        if vendor is None or name is None:
            raise DecodeError("incomplete AttributeReference", ResultReason.INVALID_MESSAGE)
        return f"{vendor}-{name}"

    def encode(self, value: str, tag: int, version: Version) -> Item:
        attr_tag = attribute_tag(value)
        if attr_tag is not None:
            return Item(tag, ENUMERATION, attr_tag)
        parts = _split_vendor(value) or ("", value)
        return Item(
            tag,
            STRUCTURE,
            [
                Item(Tag.VENDOR_IDENTIFICATION, TEXT_STRING, parts[0]),
                Item(Tag.ATTRIBUTE_NAME, TEXT_STRING, parts[1]),
            ],
        )


ATTRIBUTE = _AttributeKind()
ATTRIBUTES = _AttributesKind()
WRAPPED_ATTRIBUTE = _WrappedAttributeKind()
ATTRIBUTE_REFERENCE = _AttributeReferenceKind()


@dataclass(slots=True)
class TemplateAttribute:
    """1.x ``TemplateAttribute`` (also Common/Private Key/Public Key Template-Attribute)."""

    names: list[Item] = kmip_field(Tag.NAME, ANY, repeated=True)
    attributes: list[Attribute] = kmip_field(Tag.ATTRIBUTE, ATTRIBUTE, repeated=True)


def template_to_attributes(template: TemplateAttribute | None) -> list[Attribute]:
    """The attributes of a 1.x TemplateAttribute (template names are not attributes)."""
    return [] if template is None else list(template.attributes)


def attributes_to_template(attributes: list[Attribute]) -> TemplateAttribute:
    """A 1.x TemplateAttribute holding ``attributes``."""
    return TemplateAttribute(names=[], attributes=list(attributes))
