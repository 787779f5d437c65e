"""The KMIP JSON encoding (KMIP Additional Message Encodings v1.0 §4).

One JSON object is one TTLV item: ``{"tag": …, "type": …, "value": …}``.

* ``tag`` is the tag's xml_name (``"RequestMessage"``) or ``"0x420078"``.
* ``type`` is the item type's name; it may be left out for a Structure, whose ``value`` is
  an array of items.
* ``value`` by type: Integer, Long Integer, Interval and Big Integer a number or a 0x-hex
  string (big-endian two's complement; written as hex from 2^52 on, and Big Integers always
  as hex); a mask the names joined by ``|`` (``"Encrypt|Decrypt"``; 0x-hex parts allowed);
  Enumeration the value's xml_name, a number or 0x-hex; Boolean ``true``/``false`` or hex;
  Text String a string; Byte String hex without 0x; Date-Time and Date-Time Extended
  ISO 8601 or 0x-hex.

Names are looked up through the tag, in the version given or the message's own header, and
the KMIP 1.x AttributeValue rule applies, as in :mod:`kmipd.protocol.xml_encoding`. Every
malformed input raises :class:`DecodeError`, without input values in the message.
"""

from __future__ import annotations

import json
from typing import Any

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
    item_type_name,
)
from kmipd.protocol.xml_encoding import (
    MESSAGE_HEADERS,
    TAG_ATTRIBUTE_NAME,
    TAG_PROTOCOL_VERSION,
    TAG_PROTOCOL_VERSION_MAJOR,
    TAG_PROTOCOL_VERSION_MINOR,
    Version,
    attribute_enum,
    check_range,
    check_text_size,
    enum_of,
    finish,
    format_big_integer,
    format_datetime,
    format_enumeration,
    locate,
    mask_names,
    message_version,
    parse_big_integer,
    parse_boolean,
    parse_datetime,
    parse_enumeration,
    parse_hex_bytes,
    parse_mask,
    parse_number,
    parse_text,
    tag_from_name,
)

__all__ = ["from_json", "item_from_obj", "obj_from_item", "to_json"]

# Numbers from 2^52 on lose precision in JavaScript; the encoding writes them as hex.
_JSON_NUMBER_LIMIT = 1 << 52
_KEYS = frozenset(("tag", "type", "value"))


# --------------------------------------------------------------------------------------------
# JSON → TTLV
# --------------------------------------------------------------------------------------------


def _reject_float(_text: str) -> Any:
    raise DecodeError("KMIP JSON has no fractional numbers")


def _reject_constant(_text: str) -> Any:
    raise DecodeError("KMIP JSON has no NaN or Infinity")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DecodeError("duplicate key in a JSON object")
        obj[key] = value
    return obj


def from_json(
    text: str | bytes, limits: Limits = DEFAULT_LIMITS, version: Version | None = None
) -> Item:
    """Decode one JSON object (normally a whole message) into a TTLV tree."""
    raw = check_text_size(text, limits, "JSON")
    try:
        obj = json.loads(
            raw,
            object_pairs_hook=_object,
            parse_float=_reject_float,
            parse_constant=_reject_constant,
        )
    except DecodeError:
        raise
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"malformed JSON ({exc.msg}) at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise DecodeError(f"JSON nested deeper than {limits.max_depth} levels") from None
    except (ValueError, UnicodeError):  # e.g. a number with too many digits, bad UTF-8
        raise DecodeError("malformed JSON") from None
    return item_from_obj(obj, limits, version)


def item_from_obj(
    obj: Any, limits: Limits = DEFAULT_LIMITS, version: Version | None = None
) -> Item:
    """Decode one already parsed JSON value (``json.loads`` output)."""
    if version is None:
        version = _obj_version(obj)
    try:
        return _JsonReader(limits, version).read(obj, 0, None)
    except DecodeError as exc:
        raise finish(locate(exc, _label(obj))) from None
    except RecursionError:  # pragma: no cover - max_depth stops us long before
        raise DecodeError("JSON nested too deeply") from None


def _label(obj: Any) -> str:
    """An object's tag for error messages: a known name or hex, never arbitrary input."""
    if isinstance(obj, dict):
        tag = obj.get("tag")
        if isinstance(tag, str):
            try:
                return tables.xml_name_of_tag(tag_from_name(tag))
            except DecodeError:
                pass
    return "(item)"


def _is_tag(text: Any, tag: int) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return tag_from_name(text) == tag
    except DecodeError:
        return False


def _child(obj: Any, tag: int) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("value"), list):
        for child in obj["value"]:
            if isinstance(child, dict) and _is_tag(child.get("tag"), tag):
                return child
    return None


def _obj_version(obj: Any) -> Version | None:
    """The ProtocolVersion of a RequestMessage/ResponseMessage object, peeked before decoding."""
    if not isinstance(obj, dict) or not isinstance(obj.get("tag"), str):
        return None
    try:
        header_tag = MESSAGE_HEADERS.get(tag_from_name(obj["tag"]))
    except DecodeError:
        return None
    if header_tag is None:
        return None
    pv = _child(_child(obj, header_tag), TAG_PROTOCOL_VERSION)
    parts = []
    for tag in (TAG_PROTOCOL_VERSION_MAJOR, TAG_PROTOCOL_VERSION_MINOR):
        item = _child(pv, tag)
        if item is None or item.get("type") != "Integer":
            return None  # the same rule as message_version(): only Integer parts count
        try:
            parts.append(_number(item.get("value"), INTEGER))
        except DecodeError:
            return None
    return (parts[0], parts[1])


def _number(value: Any, typ: int) -> int:
    """A JSON number or 0x-hex string for an Integer, Long Integer, Interval or Enumeration."""
    if isinstance(value, bool):
        raise DecodeError(f"a {item_type_name(typ)} is a number or a hex string")
    if isinstance(value, int):
        return check_range(value, typ)
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        return parse_number(value, typ)
    raise DecodeError(f"a {item_type_name(typ)} is a number or a hex string")


class _JsonReader:
    __slots__ = ("limits", "version")

    def __init__(self, limits: Limits, version: Version | None) -> None:
        self.limits = limits
        self.version = version

    def read(self, obj: Any, depth: int, override: tables.EnumDef | None) -> Item:
        limits = self.limits
        if depth > limits.max_depth:
            raise DecodeError(f"nesting deeper than {limits.max_depth} levels")
        if not isinstance(obj, dict):
            raise DecodeError("an item must be a JSON object")
        if not obj.keys() <= _KEYS:
            raise DecodeError("unexpected key in an item object")
        tag_text = obj.get("tag")
        if not isinstance(tag_text, str):
            raise DecodeError("an item needs a string tag")
        tag = tag_from_name(tag_text)
        type_name = obj.get("type", "Structure")
        if not isinstance(type_name, str):
            raise DecodeError("unknown item type")
        typ = TYPE_BY_XML_NAME.get(type_name, -1)
        if typ < 0:
            raise DecodeError("unknown item type")
        if "value" not in obj:
            raise DecodeError("an item needs a value")
        value = obj["value"]

        if typ == STRUCTURE:
            if not isinstance(value, list):
                raise DecodeError("a structure's value must be an array")
            if depth >= limits.max_depth:
                # max_depth counts nested Structures, as the binary decoder does.
                raise DecodeError(f"nesting deeper than {limits.max_depth} levels")
            if len(value) > limits.max_items_per_structure:
                raise DecodeError(
                    f"more than {limits.max_items_per_structure} items in one structure"
                )
            child_override = None
            for child in value:
                if isinstance(child, dict) and _is_tag(child.get("tag"), TAG_ATTRIBUTE_NAME):
                    child_override = attribute_enum(child.get("value"))
                    break
            items: list[Item] = []
            append = items.append
            for index, child in enumerate(value):
                try:
                    append(self.read(child, depth + 1, child_override))
                except DecodeError as exc:
                    raise locate(exc, f"{_label(child)}[{index}]") from None
            return Item(tag, STRUCTURE, items)
        return Item(tag, typ, self.value(tag, typ, value, override))

    def value(self, tag: int, typ: int, value: Any, override: tables.EnumDef | None) -> Any:
        if typ == TEXT_STRING:
            if not isinstance(value, str):
                raise DecodeError("a TextString value must be a string")
            return parse_text(value, self.limits)
        if typ == ENUMERATION:
            if isinstance(value, str) and value[:2] not in ("0x", "0X"):
                return parse_enumeration(value, enum_of(tag, typ, override), self.version)
            return _number(value, ENUMERATION)
        if typ == INTEGER:
            enum = enum_of(tag, typ, override)
            if (
                enum is not None
                and isinstance(value, str)
                and ("|" in value or value[:2] not in ("0x", "0X"))
            ):
                return parse_mask([part.strip() for part in value.split("|")], enum, self.version)
            return _number(value, INTEGER)
        if typ == BYTE_STRING:
            if not isinstance(value, str):
                raise DecodeError("a ByteString value must be a hex string")
            return parse_hex_bytes(value, self.limits)
        if typ in (DATE_TIME, DATE_TIME_EXTENDED):
            if not isinstance(value, str):
                raise DecodeError("a date-time value must be an ISO 8601 or hex string")
            return parse_datetime(value, typ == DATE_TIME_EXTENDED)
        if typ == BOOLEAN:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value[:2] in ("0x", "0X"):
                return parse_boolean(value)
            raise DecodeError("a Boolean value must be true, false or hex")
        if typ in (LONG_INTEGER, INTERVAL):
            return _number(value, typ)
        if typ == BIG_INTEGER:
            if isinstance(value, bool):
                raise DecodeError("a BigInteger is a number or a hex string")
            if isinstance(value, int):
                if value.bit_length() > 8 * self.limits.max_field_bytes:
                    raise DecodeError("big integer over the field limit")
                return value
            if isinstance(value, str) and value[:2] in ("0x", "0X"):
                return parse_big_integer(value, self.limits)
            raise DecodeError("a BigInteger is a number or a hex string")
        raise DecodeError("unsupported item type")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# TTLV → JSON
# --------------------------------------------------------------------------------------------


def to_json(item: Item, version: Version | None = None, *, indent: int | None = None) -> str:
    """Encode a TTLV tree as JSON text (compact unless ``indent`` is given)."""
    if version is None:
        version = message_version(item)
    obj = _JsonWriter(version).write(item, None)
    return json.dumps(obj, ensure_ascii=False, indent=indent)


def obj_from_item(item: Item, version: Version | None = None) -> dict[str, Any]:
    """The JSON value (dicts and lists) of a TTLV tree, before serialisation."""
    if version is None:
        version = message_version(item)
    return _JsonWriter(version).write(item, None)


class _JsonWriter:
    __slots__ = ("version",)

    def __init__(self, version: Version | None) -> None:
        self.version = version

    def write(self, item: Item, override: tables.EnumDef | None) -> dict[str, Any]:
        tag, typ, value = item
        name = tables.xml_name_of_tag(tag, self.version)
        if typ == STRUCTURE:
            child_override = None
            for child in value:
                if child.tag == TAG_ATTRIBUTE_NAME:
                    child_override = attribute_enum(child.value)
                    break
            return {"tag": name, "value": [self.write(child, child_override) for child in value]}
        return {
            "tag": name,
            "type": item_type_name(typ),
            "value": self.value(tag, typ, value, override),
        }

    def value(self, tag: int, typ: int, value: Any, override: tables.EnumDef | None) -> Any:
        if typ == TEXT_STRING:
            if not isinstance(value, str):
                raise EncodeError(f"tag 0x{tag:06X}: text string value is not str")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise EncodeError(f"tag 0x{tag:06X}: text string is not valid Unicode") from None
            return value
        if typ == BOOLEAN:
            if not isinstance(value, bool):
                raise EncodeError(f"tag 0x{tag:06X}: boolean value is not bool")
            return value
        if typ == BYTE_STRING:
            if not isinstance(value, bytes | bytearray | memoryview):
                raise EncodeError(f"tag 0x{tag:06X}: byte string value is not bytes")
            return bytes(value).hex()
        if not isinstance(value, int) or isinstance(value, bool):
            raise EncodeError(f"tag 0x{tag:06X}: value is not int")
        if typ == ENUMERATION:
            return format_enumeration(value, enum_of(tag, typ, override), self.version)
        if typ == INTEGER:
            enum = enum_of(tag, typ, override)
            if enum is not None and value:
                return "|".join(mask_names(value, enum, self.version))
            return value
        if typ in (DATE_TIME, DATE_TIME_EXTENDED):
            return format_datetime(value, typ == DATE_TIME_EXTENDED)
        if typ in (LONG_INTEGER, INTERVAL):
            if -_JSON_NUMBER_LIMIT < value < _JSON_NUMBER_LIMIT:
                return value
            return f"0x{value & ((1 << 64) - 1):016X}"
        if typ == BIG_INTEGER:
            return "0x" + format_big_integer(value)
        raise EncodeError(f"tag 0x{tag:06X}: unknown item type {typ!r}")
