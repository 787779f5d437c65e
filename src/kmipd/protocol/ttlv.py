"""The TTLV tree and its binary encoding (KMIP 1.x §9.1, 2.x §9.1).

A message is a tree of :class:`Item` (tag, type, value). Values by type:

==================  ====================================================
Structure           ``list[Item]``
Integer             ``int``, signed 32-bit (masks are Integers too)
Long Integer        ``int``, signed 64-bit
Big Integer         ``int``, two's complement, any size
Enumeration         ``int``, unsigned 32-bit
Boolean             ``bool``
Text String         ``str``
Byte String         ``bytes``
Date-Time           ``int``, seconds since the epoch (signed 64-bit)
Interval            ``int``, seconds, unsigned 32-bit
Date-Time Extended  ``int``, microseconds since the epoch (KMIP 2.x)
==================  ====================================================

Times stay integers so that every encoding round-trips exactly; conversions to
``datetime`` belong to the typed layer.

The decoder and encoder are the hot path of the server: they are written by hand over
``struct`` with one header unpack per item, and without per-item objects beyond the tuple.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from kmipd.protocol._generated import ItemType
from kmipd.protocol.errors import DecodeError, EncodeError
from kmipd.protocol.limits import DEFAULT_LIMITS, Limits

STRUCTURE = 0x01
INTEGER = 0x02
LONG_INTEGER = 0x03
BIG_INTEGER = 0x04
ENUMERATION = 0x05
BOOLEAN = 0x06
TEXT_STRING = 0x07
BYTE_STRING = 0x08
DATE_TIME = 0x09
INTERVAL = 0x0A
DATE_TIME_EXTENDED = 0x0B

# Tag spaces defined by the specification: 0x42xxxx KMIP, 0x54xxxx extensions.
KMIP_TAG_SPACE = 0x42
EXTENSION_TAG_SPACE = 0x54


class Item(NamedTuple):
    """One TTLV item. ``type`` is an :class:`ItemType` value; see the module doc for values."""

    tag: int
    type: int
    value: Any

    def find(self, tag: int) -> Item | None:
        """The first child with ``tag`` (Structures only), or None."""
        for child in self.value:
            if child.tag == tag:
                return child
        return None

    def find_all(self, tag: int) -> list[Item]:
        return [child for child in self.value if child.tag == tag]


_HEADER = struct.Struct(">II")  # (tag << 8 | type, length)
_INT32 = struct.Struct(">iI")  # value, padding
_UINT32 = struct.Struct(">II")
_INT64 = struct.Struct(">q")
_UINT64 = struct.Struct(">Q")
_ZERO_PAD = bytes(8)

_FOUR_BYTE_TYPES = frozenset((ENUMERATION, INTEGER, INTERVAL))
_UNSIGNED_FOUR_BYTE_TYPES = frozenset((ENUMERATION, INTERVAL))
_EIGHT_BYTE_TYPES = frozenset((LONG_INTEGER, DATE_TIME, DATE_TIME_EXTENDED))
_STRING_TYPES = frozenset((TEXT_STRING, BYTE_STRING))
_VARIABLE_TYPES = frozenset((TEXT_STRING, BYTE_STRING, BIG_INTEGER))


def decode(data: bytes | bytearray | memoryview, limits: Limits = DEFAULT_LIMITS) -> Item:
    """Decode exactly one TTLV item (normally a whole message) from ``data``."""
    data = bytes(data)
    if len(data) > limits.max_frame_bytes:
        raise DecodeError(
            f"message of {len(data)} bytes exceeds the limit of {limits.max_frame_bytes} bytes"
        )
    try:
        items = _decode_items(data, 0, len(data), 0, limits, [limits.max_items_per_message])
    except struct.error:  # an unpack ran past the end of the input
        raise DecodeError("truncated item") from None
    if len(items) != 1:
        raise DecodeError(f"expected one top-level item, found {len(items)}")
    return items[0]


_new_item = tuple.__new__  # Item(...) would add a Python-level __new__ call per item


def _decode_items(
    data: bytes, pos: int, end: int, depth: int, limits: Limits, budget: list[int]
) -> list[Item]:
    """The items between ``pos`` and ``end``; ``budget[0]`` is how many more items the
    message may hold (charged once per structure, so the hot loop stays lean)."""
    if depth > limits.max_depth:
        raise DecodeError(f"nesting deeper than {limits.max_depth} levels at offset {pos}")
    items: list[Item] = []
    append = items.append
    unpack_header = _HEADER.unpack_from
    max_items = limits.max_items_per_structure
    while pos < end:
        if end - pos < 8:
            raise DecodeError(f"truncated item header at offset {pos}")
        tag_type, length = unpack_header(data, pos)
        space = tag_type >> 24
        if space != KMIP_TAG_SPACE and space != EXTENSION_TAG_SPACE:
            raise DecodeError(f"invalid tag 0x{tag_type >> 8:06X} at offset {pos}")
        typ = tag_type & 0xFF
        value_pos = pos + 8
        if length > end - value_pos:
            raise DecodeError(
                f"item 0x{tag_type >> 8:06X} at offset {pos} is longer than its parent"
            )
        if typ == STRUCTURE:
            if length & 7:
                raise DecodeError(
                    f"structure 0x{tag_type >> 8:06X} at offset {pos} has a "
                    "length that is not a multiple of 8"
                )
            pos = value_pos + length
            value: Any = _decode_items(data, value_pos, pos, depth + 1, limits, budget)
        elif typ in _FOUR_BYTE_TYPES:
            if length != 4:
                raise _wrong_length(tag_type, pos, length, 4)
            if end - value_pos < 8:
                raise DecodeError(
                    f"item 0x{tag_type >> 8:06X} at offset {pos} is missing its padding"
                )
            value, pad = (_INT32 if typ == INTEGER else _UINT32).unpack_from(data, value_pos)
            if pad:
                raise DecodeError(
                    f"non-zero padding after item 0x{tag_type >> 8:06X} at offset {pos}"
                )
            pos = value_pos + 8
        elif typ in _VARIABLE_TYPES:
            if length > limits.max_field_bytes:
                raise DecodeError(
                    f"item 0x{tag_type >> 8:06X} at offset {pos} is {length} "
                    f"bytes, over the field limit of {limits.max_field_bytes}"
                )
            pos = value_pos + length
            padded_end = value_pos + ((length + 7) & ~7)
            if padded_end > end:
                raise DecodeError(
                    f"item 0x{tag_type >> 8:06X} at offset {pos} is missing its padding"
                )
            if padded_end != pos and data.count(0, pos, padded_end) != padded_end - pos:
                raise DecodeError(
                    f"non-zero padding after item 0x{tag_type >> 8:06X} at offset {pos}"
                )
            if typ == TEXT_STRING:
                try:
                    value = data[value_pos:pos].decode("utf-8")
                except UnicodeDecodeError:
                    raise DecodeError(
                        f"text string 0x{tag_type >> 8:06X} at offset "
                        f"{value_pos - 8} is not valid UTF-8"
                    ) from None
            elif typ == BYTE_STRING:
                value = data[value_pos:pos]
            else:
                if length == 0 or length & 7:
                    raise DecodeError(
                        f"big integer 0x{tag_type >> 8:06X} at offset "
                        f"{value_pos - 8} has length {length}, expected a "
                        "positive multiple of 8"
                    )
                value = int.from_bytes(data[value_pos:pos], "big", signed=True)
            pos = padded_end
        elif typ in _EIGHT_BYTE_TYPES:
            if length != 8:
                raise _wrong_length(tag_type, pos, length, 8)
            value = _INT64.unpack_from(data, value_pos)[0]
            pos = value_pos + 8
        elif typ == BOOLEAN:
            if length != 8:
                raise _wrong_length(tag_type, pos, length, 8)
            raw_bool = _UINT64.unpack_from(data, value_pos)[0]
            if raw_bool > 1:
                raise DecodeError(
                    f"boolean 0x{tag_type >> 8:06X} at offset {pos} is neither 0 nor 1"
                )
            value = raw_bool == 1
            pos = value_pos + 8
        else:
            raise DecodeError(
                f"unknown item type 0x{typ:02X} for tag 0x{tag_type >> 8:06X} at offset {pos}"
            )
        append(_new_item(Item, (tag_type >> 8, typ, value)))
        if len(items) > max_items:  # stop at once, not after decoding the rest
            raise DecodeError(f"more than {max_items} items in one structure")
    budget[0] -= len(items)
    if budget[0] < 0:
        raise DecodeError(f"more than {limits.max_items_per_message} items in one message")
    return items


def _wrong_length(tag_type: int, pos: int, length: int, expected: int) -> DecodeError:
    return DecodeError(
        f"item 0x{tag_type >> 8:06X} at offset {pos} has length {length}, expected {expected}"
    )


def encode(item: Item) -> bytes:
    """Encode one item (normally a whole message) to TTLV bytes."""
    out = bytearray()
    try:
        _encode_into(out, item)
    except struct.error as exc:
        raise EncodeError(f"value out of range: {exc}") from None
    except (TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, EncodeError):
            raise
        raise EncodeError(f"cannot encode item: {type(exc).__name__}") from None
    return bytes(out)


_pack_header = _HEADER.pack
_pack_header_into = _HEADER.pack_into
_pack_int = struct.Struct(">IIiI").pack
_pack_uint = struct.Struct(">IIII").pack
_pack_int64 = struct.Struct(">IIq").pack


def _encode_into(out: bytearray, item: Item) -> None:
    tag, typ, value = item
    head = tag << 8 | typ
    if typ == STRUCTURE:
        start = len(out)
        out += _ZERO_PAD
        for child in value:
            _encode_into(out, child)
        _pack_header_into(out, start, head, len(out) - start - 8)
    elif typ == INTEGER:
        out += _pack_int(head, 4, value, 0)
    elif typ in _UNSIGNED_FOUR_BYTE_TYPES:
        out += _pack_uint(head, 4, value, 0)
    elif typ in _STRING_TYPES:
        if typ == TEXT_STRING:
            if not isinstance(value, str):
                raise EncodeError(f"tag 0x{tag:06X}: text string value is not str")
            raw = value.encode("utf-8")
        else:
            if not isinstance(value, bytes | bytearray | memoryview):
                raise EncodeError(f"tag 0x{tag:06X}: byte string value is not bytes")
            raw = bytes(value)
        length = len(raw)
        out += _pack_header(head, length)
        out += raw
        pad = -length & 7
        if pad:
            out += _ZERO_PAD[:pad]
    elif typ in _EIGHT_BYTE_TYPES:
        out += _pack_int64(head, 8, value)
    elif typ == BOOLEAN:
        if not isinstance(value, bool):
            raise EncodeError(f"tag 0x{tag:06X}: boolean value is not bool")
        out += _pack_int64(head, 8, 1 if value else 0)
    elif typ == BIG_INTEGER:
        raw = big_integer_bytes(value)
        out += _pack_header(head, len(raw))
        out += raw
    else:
        raise EncodeError(f"tag 0x{tag:06X}: unknown item type {typ!r}")


def big_integer_bytes(value: int) -> bytes:
    """Two's complement, big-endian, sign-extended to a multiple of 8 bytes (at least 8)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncodeError("big integer value is not int")
    magnitude_bits = value.bit_length() if value >= 0 else (~value).bit_length()
    size = max(8, (magnitude_bits // 8 + 1 + 7) & ~7)  # +1 byte leaves room for the sign
    return value.to_bytes(size, "big", signed=True)


def item_type_name(typ: int) -> str:
    """The xml_name of an item type (``TextString``), or ``0x..`` when unknown."""
    try:
        return _TYPE_XML_NAMES[typ]
    except KeyError:
        return f"0x{typ:02X}"


_TYPE_XML_NAMES = {
    STRUCTURE: "Structure",
    INTEGER: "Integer",
    LONG_INTEGER: "LongInteger",
    BIG_INTEGER: "BigInteger",
    ENUMERATION: "Enumeration",
    BOOLEAN: "Boolean",
    TEXT_STRING: "TextString",
    BYTE_STRING: "ByteString",
    DATE_TIME: "DateTime",
    INTERVAL: "Interval",
    DATE_TIME_EXTENDED: "DateTimeExtended",
}
TYPE_BY_XML_NAME = {name: typ for typ, name in _TYPE_XML_NAMES.items()}

assert all(ItemType(t) == t for t in _TYPE_XML_NAMES), "type codes disagree with the tables"
