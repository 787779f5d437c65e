"""The KMIP XML encoding (KMIP Additional Message Encodings v1.0 §6, and the XML profiles).

One XML element is one TTLV item::

    <RequestMessage>
      <RequestHeader>
        <ProtocolVersion>
          <ProtocolVersionMajor type="Integer" value="1"/>
          ...
      <CryptographicUsageMask type="Integer" value="Encrypt Decrypt"/>
      <TTLV tag="0x540001" type="TextString" value="vendor"/>

* The element name is the tag's ``xml_name``; a tag without a name is written ``<TTLV tag=…>``.
* ``type`` is the item type's name; absent means ``Structure``.
* ``value`` by type: Integer decimal (a mask: names separated by spaces, or 0x-hex); Long
  Integer and Interval decimal; Big Integer hex (two's complement); Enumeration the value's
  ``xml_name`` or ``0x0000000A``; Boolean ``true``/``false``; Text String as is; Byte String
  hex; Date-Time ISO 8601 (``2012-04-27T08:12:24+00:00``); Date-Time Extended the same with
  microseconds. Numbers are also accepted as 0x-hex, times as 0x-hex seconds (microseconds).

Names are looked up through the tag (:func:`tables.enum_for_tag`), in the protocol version
given by the caller or, for a RequestMessage/ResponseMessage, by its own header. In KMIP 1.x
an ``AttributeValue`` takes the enumeration or mask of the attribute named by its sibling
``AttributeName`` ("Cryptographic Algorithm" → AES).

Every malformed input raises :class:`DecodeError`, whose message names tags and positions but
never repeats input values (they may be key material). Untrusted text is parsed with
``defusedxml``; DTDs and entity declarations are refused.

The helpers for values (numbers, hex, times, enumerations, masks) are shared with
:mod:`kmipd.protocol.json_encoding`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as DET

from kmipd.protocol import tables
from kmipd.protocol.errors import DecodeError, EncodeError
from kmipd.protocol.limits import DEFAULT_LIMITS, Limits
from kmipd.protocol.ttlv import (
    BIG_INTEGER,
    BOOLEAN,
    BYTE_STRING,
    DATE_TIME,
    DATE_TIME_EXTENDED,
    ENUMERATION,
    INTEGER,
    INTERVAL,
    LONG_INTEGER,
    STRUCTURE,
    TEXT_STRING,
    TYPE_BY_XML_NAME,
    Item,
    big_integer_bytes,
    item_type_name,
)

__all__ = [
    "Version",
    "from_xml",
    "item_from_element",
    "message_version",
    "to_xml",
]

Version = tuple[int, int]

# Tags the encodings need to know by number (KMIP 1.0 §9.1.3.1, unchanged in 2.x).
TAG_ATTRIBUTE_NAME = 0x42000A
TAG_ATTRIBUTE_VALUE = 0x42000B
TAG_PROTOCOL_VERSION = 0x420069
TAG_PROTOCOL_VERSION_MAJOR = 0x42006A
TAG_PROTOCOL_VERSION_MINOR = 0x42006B
TAG_REQUEST_HEADER = 0x420077
TAG_REQUEST_MESSAGE = 0x420078
TAG_RESPONSE_HEADER = 0x42007A
TAG_RESPONSE_MESSAGE = 0x42007B
MESSAGE_HEADERS = {
    TAG_REQUEST_MESSAGE: TAG_REQUEST_HEADER,
    TAG_RESPONSE_MESSAGE: TAG_RESPONSE_HEADER,
}

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT32_MAX = (1 << 32) - 1

_DECIMAL = re.compile(r"[+-]?[0-9]{1,40}")
_HEX = re.compile(r"[0-9A-Fa-f]*")
_HEX_0X = re.compile(r"0[xX]([0-9A-Fa-f]+)")
_TAG_HEX = re.compile(r"0[xX]([0-9A-Fa-f]{6})")
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)
_ONE_MICROSECOND = timedelta(microseconds=1)


# --------------------------------------------------------------------------------------------
# Shared value helpers (XML and JSON)
# --------------------------------------------------------------------------------------------


def tag_from_hex(text: str) -> int:
    """``0x420001`` or ``0x540001`` → the tag; DecodeError for anything else."""
    m = _TAG_HEX.fullmatch(text)
    if m is None:
        raise DecodeError("a tag must be written 0x followed by 6 hex digits")
    tag = int(m.group(1), 16)
    if tag >> 16 not in (0x42, 0x54):
        raise DecodeError(f"tag 0x{tag:06X} is outside the KMIP (0x42) and extension (0x54) spaces")
    return tag


def tag_from_name(name: str) -> int:
    """A tag's xml_name (or spec name, or 0x-hex) → the tag; DecodeError when unknown."""
    if name[:2] in ("0x", "0X"):
        return tag_from_hex(name)
    tag = tables.tag_value(name)
    if tag is None:
        raise DecodeError("unknown tag name")
    return tag


def describe_tag(tag: int, version: Version | None = None) -> str:
    """A tag as it appears in error messages: its xml_name, or hex."""
    try:
        return tables.xml_name_of_tag(tag, version)
    except Exception:  # pragma: no cover - the tables never fail on an int
        return f"0x{tag:06X}"


def parse_unsigned_hex(digits: str, width: int) -> int:
    """Hex digits (no 0x) of at most ``width`` bytes → an unsigned int."""
    if len(digits) > 2 * width:
        raise DecodeError(f"hex value longer than {width} bytes")
    return int(digits, 16)


def to_signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def parse_number(text: str, typ: int) -> int:
    """A decimal or 0x-hex number for an Integer, Long Integer, Interval (or Enumeration).

    Hex is big-endian two's complement of the type's width (``0xFFFFFFFF`` is -1 as an
    Integer); shorter hex is zero-extended.
    """
    m = _HEX_0X.fullmatch(text)
    if m is not None:
        if typ == LONG_INTEGER:
            return to_signed(parse_unsigned_hex(m.group(1), 8), 64)
        value = parse_unsigned_hex(m.group(1), 4)
        return to_signed(value, 32) if typ == INTEGER else value
    if _DECIMAL.fullmatch(text) is None:
        raise DecodeError("not a decimal or 0x-hex number")
    return check_range(int(text), typ)


def check_range(value: int, typ: int) -> int:
    if typ == INTEGER:
        low, high = INT32_MIN, INT32_MAX
    elif typ in (LONG_INTEGER, DATE_TIME, DATE_TIME_EXTENDED):
        low, high = INT64_MIN, INT64_MAX
    elif typ in (INTERVAL, ENUMERATION):
        low, high = 0, UINT32_MAX
    else:
        return value
    if not low <= value <= high:
        raise DecodeError(f"value out of range for {item_type_name(typ)}")
    return value


def parse_hex_bytes(text: str, limits: Limits) -> bytes:
    """Hex without 0x (a Byte String, or a Big Integer's bytes)."""
    if len(text) > 2 * limits.max_field_bytes:
        raise DecodeError(f"value over the field limit of {limits.max_field_bytes} bytes")
    if _HEX.fullmatch(text) is None:
        raise DecodeError("not a hex string")
    if len(text) & 1:
        raise DecodeError("hex string of odd length")
    return bytes.fromhex(text)


def parse_big_integer(text: str, limits: Limits) -> int:
    """Hex (with or without 0x), big-endian two's complement; odd lengths are zero-extended."""
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if not digits:
        raise DecodeError("empty big integer")
    if len(digits) & 1:
        digits = "0" + digits
    return int.from_bytes(parse_hex_bytes(digits, limits), "big", signed=True)


def format_big_integer(value: int) -> str:
    return big_integer_bytes(value).hex()


def parse_boolean(text: str) -> bool:
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    m = _HEX_0X.fullmatch(text)
    if m is not None:
        raw = parse_unsigned_hex(m.group(1), 8)
        if raw <= 1:
            return raw == 1
    raise DecodeError("a boolean must be true or false")


def parse_text(text: str, limits: Limits) -> str:
    """A Text String: any Unicode text (no lone surrogates) within the field limit."""
    if len(text) > limits.max_field_bytes:
        raise DecodeError(f"text over the field limit of {limits.max_field_bytes} bytes")
    if not text.isascii():
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise DecodeError("text is not valid Unicode") from None
        if size > limits.max_field_bytes:
            raise DecodeError(f"text over the field limit of {limits.max_field_bytes} bytes")
    return text


def parse_datetime(text: str, extended: bool) -> int:
    """ISO 8601 (``Z`` or an offset; none means UTC), or 0x-hex → seconds (microseconds)."""
    m = _HEX_0X.fullmatch(text)
    if m is not None:
        return to_signed(parse_unsigned_hex(m.group(1), 8), 64)
    m = _ISO.fullmatch(text)
    if m is None:
        raise DecodeError("not an ISO 8601 date-time")
    year, month, day, hour, minute, second, frac, _zulu, sign, off_h, off_m = m.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
        offset = timedelta(hours=int(off_h), minutes=int(off_m)) if sign else timedelta()
        if offset >= timedelta(hours=24):
            raise ValueError("offset")
    except ValueError:
        raise DecodeError("invalid date-time") from None
    try:
        if sign == "+":
            moment -= offset
        elif sign == "-":
            moment += offset
    except OverflowError:  # 9999-12-31T23:59:59-23:59 is past what datetime can hold
        raise DecodeError("date-time out of range") from None
    micros = 0
    if frac:
        frac6 = (frac + "00000")[:6]
        if frac[6:].strip("0"):
            raise DecodeError("date-time finer than a microsecond")
        micros = int(frac6)
    delta = moment - _EPOCH
    if extended:
        return delta // _ONE_MICROSECOND + micros
    if micros:
        raise DecodeError("a Date-Time has whole seconds")
    return delta // _ONE_SECOND


def format_datetime(value: int, extended: bool) -> str:
    """ISO 8601 in UTC (``+00:00``); 0x-hex when the year is outside 1…9999."""
    try:
        if extended:
            moment = _EPOCH + timedelta(microseconds=value)
            if not 1 <= moment.year <= 9999:
                raise OverflowError
            # isoformat, not strftime: glibc's %Y drops the leading zeros of years < 1000.
            return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "+00:00"
        moment = _EPOCH + timedelta(seconds=value)
        if not 1 <= moment.year <= 9999:
            raise OverflowError
        return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "+00:00"
    except (OverflowError, ValueError):
        return f"0x{value & ((1 << 64) - 1):016X}"


def usable_enum(enum: tables.EnumDef | None, typ: int) -> tables.EnumDef | None:
    """The enumeration of an Enumeration item, or the mask of an Integer item; else None."""
    if enum is None:
        return None
    if typ == ENUMERATION and not enum.is_mask:
        return enum
    if typ == INTEGER and enum.is_mask:
        return enum
    return None


def enum_of(tag: int, typ: int, override: tables.EnumDef | None) -> tables.EnumDef | None:
    if tag == TAG_ATTRIBUTE_VALUE and override is not None:
        return usable_enum(override, typ)
    if typ != ENUMERATION and typ != INTEGER:
        return None
    return usable_enum(tables.enum_for_tag(tag), typ)


def attribute_enum(attribute_name: object) -> tables.EnumDef | None:
    """The enumeration or mask of the attribute named ``attribute_name`` (KMIP 1.x rule)."""
    if not isinstance(attribute_name, str) or not attribute_name:
        return None
    tag = tables.tag_value(attribute_name)
    if tag is None:
        return None
    return tables.enum_for_tag(tag)


def name_value(enum: tables.EnumDef, name: str, version: Version | None) -> int:
    """A variant name (xml_name, xml_name_short or spec name) → its value, in ``version``."""
    if name[:2] in ("0x", "0X"):
        raise DecodeError("malformed hex value")
    value = enum.value_of(name)
    if value is None:
        raise DecodeError(f"unknown {enum.xml_name} name")
    if version is not None and enum.variant(value, version) is None:
        raise DecodeError(
            f"{enum.xml_name} value 0x{value:08X} is not defined in KMIP {version[0]}.{version[1]}"
        )
    return value


def parse_enumeration(text: str, enum: tables.EnumDef | None, version: Version | None) -> int:
    """An Enumeration: a variant name, or 0x-hex (any value)."""
    m = _HEX_0X.fullmatch(text)
    if m is not None:
        return parse_unsigned_hex(m.group(1), 4)
    if enum is None:
        raise DecodeError("enumeration name without an enumeration for the tag")
    return name_value(enum, text, version)


def format_enumeration(value: int, enum: tables.EnumDef | None, version: Version | None) -> str:
    if enum is not None:
        variant = enum.variant(value, version)
        if variant is not None:
            return variant.xml_name
    return f"0x{value:08X}"


def parse_mask(tokens: Iterable[str], enum: tables.EnumDef, version: Version | None) -> int:
    """Mask names and 0x-hex parts, ORed; the result is a signed 32-bit Integer."""
    value = 0
    count = 0
    for token in tokens:
        if not token:
            continue
        count += 1
        m = _HEX_0X.fullmatch(token)
        if m is not None:
            value |= parse_unsigned_hex(m.group(1), 4)
        else:
            value |= name_value(enum, token, version)
    if not count:
        raise DecodeError("empty mask")
    if value > UINT32_MAX:
        raise DecodeError("mask out of range for Integer")
    return to_signed(value, 32)


def mask_names(value: int, enum: tables.EnumDef, version: Version | None) -> list[str]:
    """The names of the bits set in ``value``, ascending; unnamed bits as one 0x-hex part."""
    rest = value & UINT32_MAX
    names: list[str] = []
    for variant in sorted(enum.variants(version), key=lambda v: v.value):
        bit = variant.value
        if bit and rest & bit == bit:
            names.append(variant.xml_name)
            rest &= ~bit
    if rest:
        names.append(f"0x{rest:08X}")
    return names


def message_version(item: Item) -> Version | None:
    """The ProtocolVersion in the header of a RequestMessage/ResponseMessage item, or None."""
    header_tag = MESSAGE_HEADERS.get(item.tag)
    if header_tag is None or item.type != STRUCTURE:
        return None
    try:
        header = item.find(header_tag)
        pv = header.find(TAG_PROTOCOL_VERSION) if header is not None else None
        if pv is None or pv.type != STRUCTURE:
            return None
        major, minor = pv.find(TAG_PROTOCOL_VERSION_MAJOR), pv.find(TAG_PROTOCOL_VERSION_MINOR)
        if major is None or minor is None:
            return None
        if not isinstance(major.value, int) or not isinstance(minor.value, int):
            return None
        return (major.value, minor.value)
    except (AttributeError, TypeError):
        return None


class PathError(DecodeError):
    """A DecodeError raised deep in a tree; the readers add the path on the way out."""

    def __init__(self, message: str, path: list[str]) -> None:
        super().__init__(message)
        self.base_message = message
        self.path = path


def locate(exc: DecodeError, segment: str) -> PathError:
    """Prefix ``segment`` to the path of ``exc`` (a tag name and child index, never values)."""
    if isinstance(exc, PathError):
        exc.path.append(segment)
        return exc
    located = PathError(str(exc), [segment])
    located.reason = exc.reason
    return located


def finish(exc: DecodeError) -> DecodeError:
    """The final error: the message with its path, e.g. ``… at RequestMessage/BatchItem[1]``."""
    if isinstance(exc, PathError):
        segments = list(reversed(exc.path))
        if len(segments) > 12:  # deep nesting: the first and the last few levels are enough
            segments = [*segments[:4], "…", *segments[-6:]]
        path = "/".join(segments)
        final = DecodeError(f"{exc.base_message} at {path}", exc.reason)
        return final
    return exc


def check_text_size(text: str | bytes, limits: Limits, encoding: str) -> bytes | str:
    if len(text) > limits.max_text_bytes:
        raise DecodeError(
            f"{encoding} text of {len(text)} characters exceeds the limit of "
            f"{limits.max_text_bytes} bytes"
        )
    if isinstance(text, str):
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError(f"{encoding} text is not valid Unicode") from None
        if len(raw) > limits.max_text_bytes:
            raise DecodeError(
                f"{encoding} text of {len(raw)} bytes exceeds the limit of "
                f"{limits.max_text_bytes} bytes"
            )
        return raw
    return text


# --------------------------------------------------------------------------------------------
# XML → TTLV
# --------------------------------------------------------------------------------------------


def from_xml(
    text: str | bytes, limits: Limits = DEFAULT_LIMITS, version: Version | None = None
) -> Item:
    """Decode one XML element (normally a whole message) into a TTLV tree."""
    raw = check_text_size(text, limits, "XML")
    try:
        root = DET.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise DecodeError(f"malformed XML at line {line}, column {column}") from None
    except defusedxml.DefusedXmlException:
        raise DecodeError("XML with a DTD, entity or external reference is refused") from None
    except (ValueError, UnicodeError, RecursionError):
        raise DecodeError("malformed XML") from None
    return item_from_element(root, limits, version)


def item_from_element(
    elem: Element, limits: Limits = DEFAULT_LIMITS, version: Version | None = None
) -> Item:
    """Decode one already parsed element (e.g. a message of an OASIS test file)."""
    if version is None:
        version = _element_version(elem)
    try:
        return _XmlReader(limits, version).read(elem, 0, None)
    except DecodeError as exc:
        raise finish(locate(exc, element_label(elem))) from None
    except RecursionError:  # pragma: no cover - max_depth stops us long before
        raise DecodeError("XML nested too deeply") from None


def _element_version(elem: Element) -> Version | None:
    header = {"RequestMessage": "RequestHeader", "ResponseMessage": "ResponseHeader"}.get(
        elem.tag if isinstance(elem.tag, str) else ""
    )
    if header is None:
        return None
    h = elem.find(header)
    pv = h.find("ProtocolVersion") if h is not None else None
    if pv is None:
        return None
    major, minor = pv.find("ProtocolVersionMajor"), pv.find("ProtocolVersionMinor")
    if major is None or minor is None:
        return None
    if major.get("type") != "Integer" or minor.get("type") != "Integer":
        return None  # the same rule as message_version(): only Integer parts name a version
    try:
        values = (major.get("value", ""), minor.get("value", ""))
        if not all(_DECIMAL.fullmatch(v) for v in values):
            return None
        return (int(values[0]), int(values[1]))
    except ValueError:
        return None


def element_label(elem: Element) -> str:
    """An element's name for error messages: a known tag name, never arbitrary input text."""
    name = elem.tag
    if name == "TTLV":
        tag_text = elem.get("tag", "")
        return tag_text if _TAG_HEX.fullmatch(tag_text) else "TTLV"
    if isinstance(name, str) and " " not in name and tables.tag_value(name) is not None:
        return name
    return "(unknown element)"


_VALUE_ATTRS = frozenset(("type", "value"))
_TTLV_ATTRS = frozenset(("tag", "type", "value"))


class _XmlReader:
    __slots__ = ("limits", "version")

    def __init__(self, limits: Limits, version: Version | None) -> None:
        self.limits = limits
        self.version = version

    def read(self, elem: Element, depth: int, override: tables.EnumDef | None) -> Item:
        limits = self.limits
        if depth > limits.max_depth:
            raise DecodeError(f"nesting deeper than {limits.max_depth} levels")
        name = elem.tag
        if not isinstance(name, str):
            raise DecodeError("unexpected XML node")
        attrib = elem.attrib
        if name == "TTLV":
            tag_text = attrib.get("tag")
            if tag_text is None:
                raise DecodeError("TTLV element without a tag attribute")
            tag = tag_from_hex(tag_text)
            allowed = _TTLV_ATTRS
        else:
            tag = tables.tag_value(name)
            if tag is None or " " in name:
                raise DecodeError("unknown element name")
            allowed = _VALUE_ATTRS
        if len(attrib) > 1 or (attrib and "type" not in attrib):
            for key in attrib:
                if key not in allowed:
                    raise DecodeError("unexpected XML attribute")
        type_name = attrib.get("type")
        if type_name is None or type_name == "Structure":
            typ = STRUCTURE
        else:
            typ = TYPE_BY_XML_NAME.get(type_name, -1)
            if typ < 0:
                raise DecodeError("unknown item type")
        if elem.text is not None and not elem.text.isspace():
            raise DecodeError("unexpected text content")

        if typ == STRUCTURE:
            if "value" in attrib:
                raise DecodeError("a structure has no value attribute")
            if depth >= limits.max_depth:
                # max_depth counts nested Structures, as the binary decoder does.
                raise DecodeError(f"nesting deeper than {limits.max_depth} levels")
            children = list(elem)
            if len(children) > limits.max_items_per_structure:
                raise DecodeError(
                    f"more than {limits.max_items_per_structure} items in one structure"
                )
            child_override = None
            for child in children:
                if child.tag == "AttributeName":
                    child_override = attribute_enum(child.get("value"))
                    break
            items: list[Item] = []
            append = items.append
            for index, child in enumerate(children):
                try:
                    if child.tail is not None and not child.tail.isspace():
                        raise DecodeError("unexpected text content after the element")
                    append(self.read(child, depth + 1, child_override))
                except DecodeError as exc:
                    raise locate(exc, f"{element_label(child)}[{index}]") from None
            return Item(tag, STRUCTURE, items)

        if len(elem):
            raise DecodeError(f"an item of type {type_name} has no child elements")
        text = attrib.get("value")
        if text is None:
            if typ in (TEXT_STRING, BYTE_STRING):
                text = ""
            else:
                raise DecodeError("no value attribute")
        return Item(tag, typ, self.value(tag, typ, text, override))

    def value(self, tag: int, typ: int, text: str, override: tables.EnumDef | None) -> Any:
        if typ == TEXT_STRING:
            return parse_text(text, self.limits)
        if typ == ENUMERATION:
            return parse_enumeration(text, enum_of(tag, typ, override), self.version)
        if typ == INTEGER:
            enum = enum_of(tag, typ, override)
            if enum is not None and not _DECIMAL.fullmatch(text):
                return parse_mask(text.split(), enum, self.version)
            return parse_number(text, typ)
        if typ == BYTE_STRING:
            return parse_hex_bytes(text, self.limits)
        if typ in (DATE_TIME, DATE_TIME_EXTENDED):
            return parse_datetime(text, typ == DATE_TIME_EXTENDED)
        if typ == BOOLEAN:
            return parse_boolean(text)
        if typ in (LONG_INTEGER, INTERVAL):
            return parse_number(text, typ)
        if typ == BIG_INTEGER:
            return parse_big_integer(text, self.limits)
        raise DecodeError("unsupported item type")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# TTLV → XML
# --------------------------------------------------------------------------------------------

# XML 1.0 cannot carry these characters at all, not even as character references.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ATTR_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\n": "&#10;",
        "\r": "&#13;",
        "\t": "&#9;",
    }
)


def to_xml(item: Item, version: Version | None = None, *, indent: str | None = "  ") -> str:
    """Encode a TTLV tree as XML text (one element, pretty-printed unless ``indent`` is None).

    Raises :class:`EncodeError` for a value XML cannot carry (e.g. a control character).
    """
    if version is None:
        version = message_version(item)
    out: list[str] = []
    _XmlWriter(version, out, indent).write(item, 0, None)
    return "".join(out)


class _XmlWriter:
    __slots__ = ("indent", "out", "version")

    def __init__(self, version: Version | None, out: list[str], indent: str | None) -> None:
        self.version = version
        self.out = out
        self.indent = indent

    def write(self, item: Item, depth: int, override: tables.EnumDef | None) -> None:
        tag, typ, value = item
        out = self.out
        pad = "" if self.indent is None else self.indent * depth
        newline = "" if self.indent is None else "\n"
        name = tables.xml_name_of_tag(tag, self.version)
        if name.startswith("0x"):
            head = f'{pad}<TTLV tag="0x{tag:06X}" type="{item_type_name(typ)}"'
            name = "TTLV"
        elif typ == STRUCTURE:
            head = f"{pad}<{name}"
        else:
            head = f'{pad}<{name} type="{item_type_name(typ)}"'
        if typ == STRUCTURE:
            if not value:
                out.append(f"{head}/>{newline}")
                return
            out.append(f"{head}>{newline}")
            child_override = None
            for child in value:
                if child.tag == TAG_ATTRIBUTE_NAME:
                    child_override = attribute_enum(child.value)
                    break
            for child in value:
                self.write(child, depth + 1, child_override)
            out.append(f"{pad}</{name}>{newline}")
            return
        text = self.value(tag, typ, value, override)
        out.append(f'{head} value="{text}"/>{newline}')

    def value(self, tag: int, typ: int, value: Any, override: tables.EnumDef | None) -> str:
        if typ == TEXT_STRING:
            if not isinstance(value, str):
                raise EncodeError(f"tag 0x{tag:06X}: text string value is not str")
            if _XML_INVALID.search(value):
                raise EncodeError(
                    f"tag 0x{tag:06X}: text string holds a character XML 1.0 cannot carry"
                )
            return value.translate(_ATTR_ESCAPES)
        if typ == ENUMERATION:
            _check_int(tag, value)
            return format_enumeration(value, enum_of(tag, typ, override), self.version)
        if typ == INTEGER:
            _check_int(tag, value)
            enum = enum_of(tag, typ, override)
            if enum is not None and value:
                return " ".join(mask_names(value, enum, self.version))
            return str(value)
        if typ == BYTE_STRING:
            if not isinstance(value, bytes | bytearray | memoryview):
                raise EncodeError(f"tag 0x{tag:06X}: byte string value is not bytes")
            return bytes(value).hex()
        if typ in (DATE_TIME, DATE_TIME_EXTENDED):
            _check_int(tag, value)
            return format_datetime(value, typ == DATE_TIME_EXTENDED)
        if typ == BOOLEAN:
            if not isinstance(value, bool):
                raise EncodeError(f"tag 0x{tag:06X}: boolean value is not bool")
            return "true" if value else "false"
        if typ in (LONG_INTEGER, INTERVAL):
            _check_int(tag, value)
            return str(value)
        if typ == BIG_INTEGER:
            return format_big_integer(value)
        raise EncodeError(f"tag 0x{tag:06X}: unknown item type {typ!r}")


def _check_int(tag: int, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncodeError(f"tag 0x{tag:06X}: value is not int")
