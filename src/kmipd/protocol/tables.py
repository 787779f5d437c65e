"""Lookup API over the KMIP 1.0-2.1 tag, enumeration and mask tables.

The data lives in ``spec/*.csv`` and is compiled into ``_generated.py`` by
``tools/gen_tables.py``. All indexes are built once, at import.

Versions are ``(major, minor)`` tuples. A definition exists in a version when
``since <= version`` and (``until`` is None or ``version <= until``); ``until`` is the
last version that has the definition (inclusive), None while it is still current.

Enumeration values are always resolved through their tag (tag -> enumeration ->
variant): the same name may mean different values in different enumerations
(e.g. ``SHA3_256`` in Hashing Algorithm and in Cryptographic Algorithm).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kmipd.protocol import _generated as _g

Version = tuple[int, int]
VERSIONS: tuple[Version, ...] = tuple(_g.VERSIONS)

__all__ = [
    "VERSIONS",
    "EnumDef",
    "TagDef",
    "VariantDef",
    "Version",
    "enum_def",
    "enum_for_tag",
    "exists_in",
    "tag_def",
    "tag_value",
    "xml_name_of_tag",
]


@dataclass(frozen=True, slots=True)
class TagDef:
    value: int
    name: str
    xml_name: str
    since: Version
    until: Version | None
    enum: str | None  # name of the enumeration or mask the tag's values are drawn from


@dataclass(frozen=True, slots=True)
class VariantDef:
    value: int
    name: str
    xml_name: str
    since: Version
    until: Version | None


def exists_in(defn: TagDef | VariantDef, version: Version) -> bool:
    """Whether the tag or variant is defined in ``version``."""
    return defn.since <= version and (defn.until is None or version <= defn.until)


def _pick(rows: tuple, version: Version | None):
    """The row valid in ``version`` (rows sorted by ``since``); the newest if None."""
    if not rows:
        return None
    if version is None:
        return rows[-1]
    for row in rows:
        if exists_in(row, version):
            return row
    return None


def _parse_hex(name: str) -> int | None:
    if name[:2] in ("0x", "0X"):
        try:
            return int(name, 16)
        except ValueError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class EnumDef:
    name: str
    xml_name: str
    is_mask: bool
    _by_value: dict[int, tuple[VariantDef, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _by_name: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def variant(self, value: int, version: Version | None = None) -> VariantDef | None:
        """The variant of ``value`` valid in ``version`` (the newest spelling if None)."""
        return _pick(self._by_value.get(value, ()), version)

    def value_of(self, name: str) -> int | None:
        """Value for an xml_name, xml_name_short or spec name (any version).

        A ``0x``-prefixed hex string (the XML/JSON encodings allow it for any value,
        including extensions) is returned as its number.
        """
        value = self._by_name.get(name)
        if value is None:
            value = _parse_hex(name)
        return value

    def variants(self, version: Version | None = None) -> list[VariantDef]:
        """The variants valid in ``version`` (all values, newest spellings, if None)."""
        out = []
        for value in sorted(self._by_value):
            row = _pick(self._by_value[value], version)
            if row is not None:
                out.append(row)
        return out


def _make_enum(
    name: str, xml_name: str, is_mask: bool, rows: list[tuple[VariantDef, str | None]]
) -> EnumDef:
    by_value: dict[int, list[VariantDef]] = {}
    by_name: dict[str, int] = {}
    shorts: dict[str, set[int]] = {}
    for variant, short in sorted(rows, key=lambda r: (r[0].value, r[0].since)):
        by_value.setdefault(variant.value, []).append(variant)
        if short:
            shorts.setdefault(short, set()).add(variant.value)
    # Older spellings first so that the newest one wins a (theoretical) clash.
    for variant, _ in sorted(rows, key=lambda r: r[0].since):
        by_name[variant.name] = variant.value
        by_name[variant.xml_name] = variant.value
    for short, values in sorted(shorts.items()):
        if len(values) == 1 and short not in by_name:  # ambiguous short names are skipped
            by_name[short] = next(iter(values))
    return EnumDef(
        name=name,
        xml_name=xml_name,
        is_mask=is_mask,
        _by_value={v: tuple(rs) for v, rs in by_value.items()},
        _by_name=by_name,
    )


# --- indexes (built once) ------------------------------------------------------------

_TAG_ROWS: dict[int, tuple[TagDef, ...]] = {}
_TAG_BY_NAME: dict[str, int] = {}


def _build_tags() -> None:
    rows: dict[int, list[TagDef]] = {}
    defs = [TagDef(*r) for r in _g.TAG_ROWS]
    for d in sorted(defs, key=lambda d: (d.value, d.since)):
        rows.setdefault(d.value, []).append(d)
    for d in sorted(defs, key=lambda d: d.since):
        _TAG_BY_NAME[d.name] = d.value
        _TAG_BY_NAME[d.xml_name] = d.value
    _TAG_ROWS.update({v: tuple(rs) for v, rs in rows.items()})


_build_tags()

_ENUMS: dict[str, EnumDef] = {}
_ENUM_BY_NAME: dict[str, EnumDef] = {}


def _build_enums() -> None:
    grouped: dict[str, list[tuple[VariantDef, str | None]]] = {}
    for enum, value, name, xml, short, since, until in _g.ENUM_ROWS + _g.MASK_ROWS:
        grouped.setdefault(enum, []).append((VariantDef(value, name, xml, since, until), short))
    for name, xml_name, is_mask in _g.ENUMERATIONS:
        _ENUMS[name] = _make_enum(name, xml_name, is_mask, grouped.get(name, []))
    # Synthetic enumeration whose values are tag numbers (2.x Attribute Reference).
    tag_variants = [
        (VariantDef(d.value, d.name, d.xml_name, d.since, d.until), None)
        for rows in _TAG_ROWS.values()
        for d in rows
    ]
    _ENUMS["Tag"] = _make_enum("Tag", "Tag", False, tag_variants)
    for e in _ENUMS.values():
        _ENUM_BY_NAME[e.xml_name] = e
    for e in _ENUMS.values():
        _ENUM_BY_NAME[e.name] = e


_build_enums()

_ENUM_OF_TAG: dict[int, EnumDef] = {}
for _value, _rows in _TAG_ROWS.items():
    for _row in reversed(_rows):  # the newest row that names an enumeration
        if _row.enum is not None:
            _ENUM_OF_TAG[_value] = _ENUMS[_row.enum]
            break
del _value, _rows, _row


# --- public lookups ------------------------------------------------------------------


def tag_def(value: int, version: Version | None = None) -> TagDef | None:
    """The tag definition valid in ``version`` (the newest one if None)."""
    return _pick(_TAG_ROWS.get(value, ()), version)


def tag_value(name: str) -> int | None:
    """Tag number for an xml_name (``CryptographicUsageMask``), a spec name
    (``Cryptographic Usage Mask``) of any version, or a ``0x540001`` hex string."""
    value = _TAG_BY_NAME.get(name)
    if value is None:
        value = _parse_hex(name)
    return value


def enum_def(name: str) -> EnumDef | None:
    """Enumeration or mask by spec name (``Result Reason``) or xml_name (``ResultReason``)."""
    return _ENUM_BY_NAME.get(name)


def enum_for_tag(tag: int) -> EnumDef | None:
    """The enumeration or mask whose values ``tag`` carries; the synthetic ``Tag``
    enumeration for tags whose values are tag numbers (Attribute Reference)."""
    return _ENUM_OF_TAG.get(tag)


def xml_name_of_tag(tag: int, version: Version | None = None) -> str:
    """xml_name of ``tag`` in ``version`` (falling back to its newest name when the tag
    does not exist in that version), or ``"0x540001"``-style hex when unknown."""
    d = _pick(_TAG_ROWS.get(tag, ()), version) or _pick(_TAG_ROWS.get(tag, ()), None)
    return d.xml_name if d is not None else f"0x{tag:06X}"
