"""A human-readable, indented listing of a TTLV tree (``kmipd ttlv decode``).

One line per item: the tag's name, its type, and its value written as the KMIP XML encoding
writes it (enumeration and mask names by tag, ISO 8601 dates, hex bytes).
"""

from __future__ import annotations

from kmipd.protocol import tables
from kmipd.protocol.tables import Version
from kmipd.protocol.ttlv import (
    BIG_INTEGER,
    BOOLEAN,
    BYTE_STRING,
    DATE_TIME,
    DATE_TIME_EXTENDED,
    ENUMERATION,
    INTEGER,
    STRUCTURE,
    TEXT_STRING,
    Item,
    item_type_name,
)
from kmipd.protocol.xml_encoding import (
    TAG_ATTRIBUTE_NAME,
    attribute_enum,
    enum_of,
    format_big_integer,
    format_datetime,
    format_enumeration,
    mask_names,
    message_version,
)


def format_tree(item: Item, version: Version | None = None, indent: str = "  ") -> str:
    if version is None:
        version = message_version(item)
    lines: list[str] = []
    _write(item, 0, None, version, indent, lines)
    return "\n".join(lines) + "\n"


def _write(
    item: Item,
    depth: int,
    override: tables.EnumDef | None,
    version: Version | None,
    indent: str,
    lines: list[str],
) -> None:
    tag, typ, value = item
    name = tables.xml_name_of_tag(tag, version)
    prefix = f"{indent * depth}{name}"
    if typ == STRUCTURE:
        lines.append(prefix)
        child_override = next(
            (attribute_enum(c.value) for c in value if c.tag == TAG_ATTRIBUTE_NAME), None
        )
        for child in value:
            _write(child, depth + 1, child_override, version, indent, lines)
        return
    lines.append(
        f"{prefix} ({item_type_name(typ)}): {_value_text(tag, typ, value, override, version)}"
    )


def _value_text(
    tag: int, typ: int, value: object, override: tables.EnumDef | None, version: Version | None
) -> str:
    if typ == ENUMERATION:
        assert isinstance(value, int)
        return format_enumeration(value, enum_of(tag, typ, override), version)
    if typ == INTEGER:
        assert isinstance(value, int)
        enum = enum_of(tag, typ, override)
        return " | ".join(mask_names(value, enum, version)) if enum and value else str(value)
    if typ == TEXT_STRING:
        return repr(value)
    if typ == BYTE_STRING:
        assert isinstance(value, bytes)
        return value.hex() if value else "(empty)"
    if typ == BIG_INTEGER:
        assert isinstance(value, int)
        return format_big_integer(value)
    if typ in (DATE_TIME, DATE_TIME_EXTENDED):
        assert isinstance(value, int)
        return format_datetime(value, typ == DATE_TIME_EXTENDED)
    if typ == BOOLEAN:
        return "true" if value else "false"
    return str(value)
