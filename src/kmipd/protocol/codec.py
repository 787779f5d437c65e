"""One generic walker between TTLV trees and typed dataclasses.

A typed structure is a plain ``@dataclass`` whose wire fields are declared with
:func:`kmip_field`::

    @dataclass(slots=True)
    class GetRequest:
        unique_identifier: str | Item | None = uid_field()
        key_format_type: KeyFormatType | int | None = kmip_field(Tag.KEY_FORMAT_TYPE, ENUMERATION)

A field's *kind* is a TTLV item type (``TEXT_STRING``, ``ENUMERATION``...), another typed
dataclass (a nested Structure), :data:`ANY` (the raw :class:`Item` is kept), or a
:class:`Converter` for values whose wire form is not one Structure (attributes).
Fields without ``kmip_field`` metadata are not on the wire; a field declared with
:func:`extra_field` collects unknown children.

For each (class, protocol version) the walker compiles one decode and one encode function
from the field metadata, the first time they are needed: no per-call reflection, and no
read/write code per class.

Decoding accepts children in any order, keeps unknown enumeration values as ``int``, and
raises :class:`DecodeError` only: ``INVALID_MESSAGE`` for structural errors (a required field
missing, a single field repeated), ``INVALID_FIELD`` for a child of the wrong item type or a
tag the structure does not know. Encoding writes fields in declaration order and omits
``None`` fields and fields that do not exist in the target version.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from kmipd.protocol import _generated, tables
from kmipd.protocol._generated import ResultReason, Tag
from kmipd.protocol.errors import DecodeError, EncodeError
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
    Item,
    item_type_name,
)

__all__ = [
    "ANY",
    "BIG_INTEGER",
    "BOOLEAN",
    "BYTE_STRING",
    "DATE_TIME",
    "DATE_TIME_EXTENDED",
    "ENUMERATION",
    "INTEGER",
    "INTERVAL",
    "LONG_INTEGER",
    "TEXT_STRING",
    "Choice",
    "Converter",
    "Version",
    "choice_field",
    "enum_class",
    "extra_field",
    "from_item",
    "kmip_field",
    "tag_name",
    "to_item",
    "uid_field",
    "wire_fields",
]

Version = tuple[int, int]
T = TypeVar("T")

ANY = "any"
"""Field kind: keep the child as a raw :class:`Item` (values whose type varies)."""

_SCALAR_TYPES = frozenset(
    {
        INTEGER,
        LONG_INTEGER,
        BIG_INTEGER,
        ENUMERATION,
        BOOLEAN,
        TEXT_STRING,
        BYTE_STRING,
        DATE_TIME,
        INTERVAL,
        DATE_TIME_EXTENDED,
    }
)
_META_KEY = "kmip"
_EXTRA_KEY = "kmip_extra"
_NO_VERSION: Version = (0, 0)
_ALL_VERSIONS: Version = (99, 99)


class Choice:
    """Field kind: one of several typed structures, told apart by their tag.

    ``choice({Tag.SYMMETRIC_KEY: SymmetricKey, ...})``; encoding takes the tag from the
    value's class.
    """

    __slots__ = ("options", "tag_of")

    def __init__(self, options: dict[int, type]) -> None:
        self.options = dict(options)
        self.tag_of = {cls: tag for tag, cls in options.items()}

    def encode(self, value: Any, version: Version) -> Item:
        try:
            tag = self.tag_of[type(value)]
        except KeyError:
            raise EncodeError(f"{type(value).__name__} is not a valid choice here") from None
        return _plan(type(value), version).encode(value, tag)


class Converter(Protocol):
    """A field kind with its own wire mapping (used for attributes)."""

    item_type: int | None  # the expected item type of the child, or None for any

    def decode(self, item: Item, version: Version) -> Any: ...

    def encode(self, value: Any, tag: int, version: Version) -> Item: ...


@dataclasses.dataclass(frozen=True, slots=True)
class _Form:
    """One wire form of a field: the tag and kind used within a version range."""

    tag: int
    kind: Any
    repeated: bool
    since: Version
    until: Version

    def exists_in(self, version: Version) -> bool:
        return self.since <= version <= self.until


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldSpec:
    forms: tuple[_Form, ...]
    required: bool
    variant: bool
    enum: type[enum.IntEnum] | None


def kmip_field(
    tag: int,
    kind: Any,
    *,
    repeated: bool = False,
    required: bool = False,
    since: Version | None = None,
    until: Version | None = None,
    variant: bool = False,
    enum: type[enum.IntEnum] | None = None,
    v2: tuple[int, Any] | tuple[int, Any, bool] | None = None,
    secret: bool = False,
) -> Any:
    """Declare a wire field. ``secret`` keeps the value out of the dataclass's repr (key
    material must not reach a log through an exception or a debug print).

    By default the field exists in the versions that define its tag. ``since``/``until``
    narrow the versions in which the field is on the wire. ``v2`` gives
    another ``(tag, kind[, repeated])`` used from KMIP 2.0 on (the first form then ends at
    1.x). ``variant`` keeps a child of another item type as a raw :class:`Item` instead of
    failing (KMIP 2.x Unique Identifiers). ``enum`` overrides the enumeration class looked up
    from the tag.
    """
    tag_since, tag_until = _tag_range(tag)
    first_until = min(until or _ALL_VERSIONS, tag_until)
    forms = []
    if v2 is not None:
        first_until = min(first_until, (1, 99))
    forms.append(_Form(tag, kind, repeated, max(since or _NO_VERSION, tag_since), first_until))
    if v2 is not None:
        v2_tag, v2_kind, *rest = v2
        v2_since, v2_until = _tag_range(v2_tag)
        v2_until = min(until or _ALL_VERSIONS, v2_until)
        v2_repeated = bool(rest and rest[0])
        forms.append(_Form(v2_tag, v2_kind, v2_repeated, max((2, 0), v2_since), v2_until))
    spec = _FieldSpec(tuple(forms), required, variant, enum)
    if any(form.repeated for form in forms):
        return dataclasses.field(default_factory=list, metadata={_META_KEY: spec}, repr=not secret)
    return dataclasses.field(default=None, metadata={_META_KEY: spec}, repr=not secret)


def _tag_range(tag: int) -> tuple[Version, Version]:
    """The first and last versions that define ``tag`` (all versions for unknown tags)."""
    present = [v for v in tables.VERSIONS if tables.tag_def(tag, v) is not None]
    if not present:
        return _NO_VERSION, _ALL_VERSIONS
    last = present[-1]
    return present[0], (_ALL_VERSIONS if last == tables.VERSIONS[-1] else last)


def uid_field(*, required: bool = False, repeated: bool = False, **kwargs: Any) -> Any:
    """A Unique Identifier field: a Text String, or in 2.x possibly another type (kept raw)."""
    return kmip_field(
        Tag.UNIQUE_IDENTIFIER,
        TEXT_STRING,
        required=required,
        repeated=repeated,
        variant=True,
        **kwargs,
    )


def choice_field(options: dict[int, type], *, required: bool = False, **kwargs: Any) -> Any:
    """A field holding one of several typed structures, told apart by tag (see :class:`Choice`)."""
    return kmip_field(next(iter(options)), Choice(options), required=required, **kwargs)


def extra_field() -> Any:
    """A ``list[Item]`` that receives children with tags the structure does not declare."""
    return dataclasses.field(default_factory=list, metadata={_EXTRA_KEY: True})


def wire_fields(cls: type) -> list[tuple[str, _FieldSpec]]:
    """The declared wire fields of a typed dataclass, in declaration order."""
    return [
        (f.name, f.metadata[_META_KEY]) for f in dataclasses.fields(cls) if _META_KEY in f.metadata
    ]


def enum_class(tag: int) -> type[enum.IntEnum] | None:
    """The IntEnum class of the values of an Enumeration tag (None for masks and unknown)."""
    defn = tables.enum_for_tag(tag)
    if defn is None or defn.is_mask:
        return None
    cls = getattr(_generated, defn.xml_name, None)
    if isinstance(cls, type) and issubclass(cls, enum.IntEnum) and cls is not Tag:
        return cls
    return None


def tag_name(tag: int) -> str:
    """A readable name for a tag (its xml_name), for error messages."""
    return tables.xml_name_of_tag(tag)


# ---------------------------------------------------------------------------------------------
# Public entry points


def from_item(cls: type[T], item: Item, version: Version) -> T:
    """Decode ``item`` (a Structure) into an instance of the typed dataclass ``cls``."""
    if item.type != STRUCTURE:
        raise DecodeError(
            f"{tag_name(item.tag)} is of type {item_type_name(item.type)}, expected Structure",
            ResultReason.INVALID_FIELD,
        )
    return _plan(cls, version).decode(item)  # type: ignore[no-any-return]


def to_item(obj: Any, tag: int, version: Version) -> Item:
    """Encode the typed dataclass ``obj`` as a Structure with ``tag``."""
    return _plan(type(obj), version).encode(obj, tag)


# ---------------------------------------------------------------------------------------------
# Plans: one compiled decoder and encoder per (class, version)

_PLANS: dict[tuple[type, Version], _Plan] = {}
_KNOWN_VERSIONS: frozenset[Version] = frozenset(tables.VERSIONS)
_SORTED_VERSIONS: list[Version] = sorted(_KNOWN_VERSIONS)


def _canonical(version: Version) -> Version:
    """Map any version to a known one with the same field shapes (bounds the plan cache)."""
    if version in _KNOWN_VERSIONS:
        return version
    below = [v for v in _SORTED_VERSIONS if v <= version]
    return below[-1] if below else _SORTED_VERSIONS[0]


def _plan(cls: type, version: Version) -> _Plan:
    try:
        return _PLANS[(cls, version)]
    except (KeyError, TypeError):
        pass
    try:
        version = (int(version[0]), int(version[1]))
    except (TypeError, ValueError, IndexError):
        raise EncodeError("protocol version must be a (major, minor) tuple") from None
    canonical = _canonical(version)
    plan = _PLANS.get((cls, canonical))
    if plan is None:
        if not dataclasses.is_dataclass(cls):
            raise EncodeError(f"{cls.__name__} is not a typed KMIP structure")
        plan = _Plan(cls, canonical)
        _PLANS[(cls, canonical)] = plan
    if version == canonical:
        _PLANS[(cls, version)] = plan
    return plan


class _Plan:
    """The compiled decode/encode functions of one class in one version (built lazily)."""

    __slots__ = ("cls", "decode", "encode", "version")

    def __init__(self, cls: type, version: Version) -> None:
        self.cls = cls
        self.version = version
        self.decode: Callable[[Item], Any] = self._compile_decode
        self.encode: Callable[[Any, int], Item] = self._compile_encode

    def _compile_decode(self, item: Item) -> Any:
        self.decode = _compile(self.cls, self.version)[0]
        return self.decode(item)

    def _compile_encode(self, obj: Any, tag: int) -> Item:
        self.encode = _compile(self.cls, self.version)[1]
        return self.encode(obj, tag)


def _raise_wrong_type(struct_tag: int, child: Item, expected: int) -> None:
    raise DecodeError(
        f"{tag_name(child.tag)} in {tag_name(struct_tag)} is of type "
        f"{item_type_name(child.type)}, expected {item_type_name(expected)}",
        ResultReason.INVALID_FIELD,
    )


def _raise_duplicate(struct_tag: int, child: Item) -> None:
    raise DecodeError(
        f"{tag_name(child.tag)} appears more than once in {tag_name(struct_tag)}",
        ResultReason.INVALID_MESSAGE,
    )


def _raise_unknown(struct_tag: int, child: Item) -> None:
    raise DecodeError(
        f"unexpected {tag_name(child.tag)} in {tag_name(struct_tag)}",
        ResultReason.INVALID_FIELD,
    )


def _raise_missing(struct_tag: int, tag: int) -> None:
    raise DecodeError(
        f"required {tag_name(tag)} missing from {tag_name(struct_tag)}",
        ResultReason.INVALID_MESSAGE,
    )


def _raise_encode_missing(cls: type, name: str) -> None:
    raise EncodeError(f"{cls.__name__}.{name} is required")


def _retag(value: Item, tag: int) -> Item:
    if not isinstance(value, Item):
        raise EncodeError(f"{tag_name(tag)}: expected a raw Item")
    return value if value.tag == tag else Item(tag, value.type, value.value)


def _compile(cls: type, version: Version) -> tuple[Callable[..., Any], Callable[..., Item]]:
    """Generate the decoder and encoder of ``cls`` for ``version`` from its field metadata."""
    ns: dict[str, Any] = {
        "Item": Item,
        "STRUCTURE": STRUCTURE,
        "cls": cls,
        "new": object.__new__,
        "new_item": tuple.__new__,
        "wrong_type": _raise_wrong_type,
        "duplicate": _raise_duplicate,
        "unknown": _raise_unknown,
        "missing": _raise_missing,
        "encode_missing": _raise_encode_missing,
        "retag": _retag,
        "version": version,
        "isinstance": isinstance,
        "DecodeError": DecodeError,
    }
    extra_name = next((f.name for f in dataclasses.fields(cls) if f.metadata.get(_EXTRA_KEY)), None)
    all_fields = dataclasses.fields(cls)

    dec_init: list[str] = []
    dec_branches: list[str] = []
    dec_checks: list[str] = []
    enc: list[str] = []
    seen_tags: set[int] = set()
    active: dict[str, str] = {}  # field name -> decoder variable, for this version

    for index, (name, spec) in enumerate(wire_fields(cls)):
        form = next((f for f in spec.forms if f.exists_in(version)), None)
        if form is None:
            continue
        tags = set(form.kind.options) if isinstance(form.kind, Choice) else {form.tag}
        if seen_tags & tags:
            raise TypeError(f"{cls.__name__}.{name}: a tag is used twice in {version}")
        seen_tags.update(tags)
        tag, kind = form.tag, form.kind
        var = f"f{index}"
        active[name] = var
        t = int(tag)
        match = f"tag == {t}"
        dec_init.append(f"    {var} = []" if form.repeated else f"    {var} = None")

        # How one child becomes a value (decode) and a value becomes an item (encode).
        if isinstance(kind, int) and kind in _SCALAR_TYPES:
            type_check = kind
            if kind == ENUMERATION:
                enum_cls = spec.enum or enum_class(tag)
                if enum_cls is not None:
                    ns[f"E{index}"] = enum_cls._value2member_map_.get
                    value_expr = f"E{index}(value, value)"
                else:
                    value_expr = "value"
            else:
                value_expr = "value"
            enc_expr = f"new_item(Item, ({t}, {int(kind)}, v))"
        elif kind == ANY:
            type_check = None
            value_expr = "child"
            enc_expr = f"retag(v, {t})"
        elif isinstance(kind, type) and dataclasses.is_dataclass(kind):
            type_check = STRUCTURE
            ns[f"P{index}"] = _plan(kind, version)
            value_expr = f"P{index}.decode(child)"
            enc_expr = f"P{index}.encode(v, {t})"
        elif isinstance(kind, Choice):
            type_check = STRUCTURE
            ns[f"TS{index}"] = frozenset(kind.options)
            ns[f"CP{index}"] = {t: _plan(c, version) for t, c in kind.options.items()}
            ns[f"C{index}"] = kind
            match = f"tag in TS{index}"
            value_expr = f"CP{index}[tag].decode(child)"
            enc_expr = f"C{index}.encode(v, version)"
        elif hasattr(kind, "decode") and hasattr(kind, "encode"):
            type_check = kind.item_type
            ns[f"C{index}"] = kind
            value_expr = f"C{index}.decode(child, version)"
            enc_expr = f"C{index}.encode(v, {t}, version)"
        else:
            raise TypeError(f"{cls.__name__}.{name}: unsupported field kind {kind!r}")

        if spec.variant:
            enc_expr = f"retag(v, {t}) if isinstance(v, Item) else {enc_expr}"
        lines = [f"        {'if' if not dec_branches else 'elif'} {match}:"]
        convert = [] if value_expr == "value" else [f"value = {value_expr}"]
        if type_check is not None:
            y = int(type_check)
            lines.append(f"            if typ != {y}:")
            if spec.variant:
                lines.append("                value = child")
                if convert:
                    lines.append("            else:")
                    lines.append(f"                {convert[0]}")
            else:
                lines.append(f"                wrong_type(item.tag, child, {y})")
                lines.extend(f"            {line}" for line in convert)
        else:
            lines.extend(f"            {line}" for line in convert)
        if form.repeated:
            lines.append(f"            {var}.append(value)")
        else:
            lines.append(f"            if {var} is not None:")
            lines.append("                duplicate(item.tag, child)")
            lines.append(f"            {var} = value")
        dec_branches.extend(lines)
        if spec.required:
            if form.repeated:
                dec_checks.append(f"    if not {var}:\n        missing(item.tag, {t})")
            else:
                dec_checks.append(f"    if {var} is None:\n        missing(item.tag, {t})")

        if form.repeated:
            enc.append(f"    for v in obj.{name}:")
            enc.append(f"        append({enc_expr})")
            if spec.required:
                enc.insert(-2, f"    if not obj.{name}:\n        encode_missing(cls, {name!r})")
        else:
            # A list field whose 2.x form is one structure (Attributes): absent decodes as [],
            # and an optional empty list is left off the wire (clients reject empty ones).
            list_valued = any(f.repeated for f in spec.forms)
            if list_valued:
                dec_checks.append(f"    if {var} is None:\n        {var} = []")
            enc.append(f"    v = obj.{name}")
            if list_valued and not spec.required:
                enc.append("    if v:")
            else:
                enc.append("    if v is not None:")
            enc.append(f"        append({enc_expr})")
            if spec.required:
                enc.append("    else:")
                enc.append(f"        encode_missing(cls, {name!r})")

    # Decoder
    src = ["def decode(item):"]
    src.extend(dec_init)
    if extra_name:
        src.append("    extra = []")
    src.append("    for child in item.value:")
    src.append("        tag, typ, value = child")
    src.extend(dec_branches)
    fallback = "extra.append(child)" if extra_name else "unknown(item.tag, child)"
    if dec_branches:
        src.append("        else:")
        src.append(f"            {fallback}")
    else:
        src.append(f"        {fallback}")
    src.extend(dec_checks)
    src.append("    obj = new(cls)")
    for f in all_fields:
        if f.name in active:
            src.append(f"    obj.{f.name} = {active[f.name]}")
        elif f.name == extra_name:
            src.append(f"    obj.{f.name} = extra")
        elif f.default is not dataclasses.MISSING:
            ns[f"D_{f.name}"] = f.default
            src.append(f"    obj.{f.name} = D_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            ns[f"DF_{f.name}"] = f.default_factory
            src.append(f"    obj.{f.name} = DF_{f.name}()")
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: non-wire fields need a default")
    src.append("    return obj")

    # Encoder
    src.append("def encode(obj, tag):")
    src.append("    out = []")
    src.append("    append = out.append")
    src.extend(enc)
    if extra_name:
        src.append(f"    out.extend(obj.{extra_name})")
    src.append(f"    return new_item(Item, (tag, {STRUCTURE}, out))")

    code = "\n".join(src)
    exec(compile(code, f"<kmip codec {cls.__name__} {version[0]}.{version[1]}>", "exec"), ns)
    return ns["decode"], ns["encode"]
