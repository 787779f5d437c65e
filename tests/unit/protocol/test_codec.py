"""The generic walker: version gates, repeated fields, unknown tags, required fields, types."""

# ruff: noqa: RUF009

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kmipd.protocol._generated import ObjectType, ResultReason, Tag
from kmipd.protocol.codec import (
    ANY,
    ENUMERATION,
    INTEGER,
    TEXT_STRING,
    extra_field,
    from_item,
    kmip_field,
    to_item,
    uid_field,
)
from kmipd.protocol.errors import DecodeError, EncodeError
from kmipd.protocol.ttlv import STRUCTURE, Item

S = Tag.REQUEST_PAYLOAD


@dataclass(slots=True)
class Inner:
    major: int | None = kmip_field(Tag.PROTOCOL_VERSION_MAJOR, INTEGER, required=True)


@dataclass(slots=True)
class Sample:
    uid: str | Item | None = uid_field()
    object_type: ObjectType | int | None = kmip_field(Tag.OBJECT_TYPE, ENUMERATION)
    names: list[str] = kmip_field(Tag.ATTRIBUTE_NAME, TEXT_STRING, repeated=True)
    old: int | None = kmip_field(Tag.ATTRIBUTE_INDEX, INTEGER, until=(1, 4))
    new: bool | None = kmip_field(Tag.EPHEMERAL, ANY)
    inner: Inner | None = kmip_field(Tag.PROTOCOL_VERSION, Inner)


@dataclass(slots=True)
class WithExtra:
    uid: str | Item | None = uid_field(required=True)
    extra: list[Item] = extra_field()


def _s(*children: Item) -> Item:
    return Item(S, STRUCTURE, list(children))


UID = Item(Tag.UNIQUE_IDENTIFIER, TEXT_STRING, "u")
OT = Item(Tag.OBJECT_TYPE, ENUMERATION, 2)
IDX = Item(Tag.ATTRIBUTE_INDEX, INTEGER, 1)
EPH = Item(Tag.EPHEMERAL, 0x06, True)


def test_round_trip_and_enum_conversion() -> None:
    tree = _s(UID, OT, Item(Tag.ATTRIBUTE_NAME, TEXT_STRING, "a"))
    obj = from_item(Sample, tree, (1, 4))
    assert obj.uid == "u" and obj.object_type is ObjectType.SYMMETRIC_KEY
    assert obj.names == ["a"]
    assert to_item(obj, S, (1, 4)) == tree


def test_unknown_enum_value_is_kept_as_int() -> None:
    obj = from_item(Sample, _s(Item(Tag.OBJECT_TYPE, ENUMERATION, 0xDEAD)), (1, 4))
    assert obj.object_type == 0xDEAD and type(obj.object_type) is int


def test_repeated_fields_keep_order() -> None:
    names = [Item(Tag.ATTRIBUTE_NAME, TEXT_STRING, n) for n in "cab"]
    obj = from_item(Sample, _s(*names), (1, 0))
    assert obj.names == ["c", "a", "b"]
    assert to_item(obj, S, (1, 0)).value == names


def test_children_in_any_order_are_accepted_and_written_in_declared_order() -> None:
    obj = from_item(Sample, _s(OT, UID), (1, 1))
    assert to_item(obj, S, (1, 1)).value == [UID, OT]


def test_version_gated_fields() -> None:
    # Attribute Index exists until 1.4; Ephemeral from 2.0 on.
    assert from_item(Sample, _s(IDX), (1, 4)).old == 1
    with pytest.raises(DecodeError) as info:
        from_item(Sample, _s(IDX), (2, 1))
    assert info.value.reason == ResultReason.INVALID_FIELD
    with pytest.raises(DecodeError):
        from_item(Sample, _s(EPH), (1, 4))
    assert from_item(Sample, _s(EPH), (2, 0)).new == EPH
    obj = Sample(old=1, new=EPH)
    assert to_item(obj, S, (1, 4)).value == [IDX]
    assert to_item(obj, S, (2, 1)).value == [EPH]


def test_unknown_versions_use_the_nearest_known_shape() -> None:
    assert to_item(Sample(old=1, new=EPH), S, (1, 9)).value == [IDX]
    assert to_item(Sample(old=1, new=EPH), S, (7, 3)).value == [EPH]


def test_unknown_tag_is_invalid_field_without_extra() -> None:
    stray = Item(Tag.OFFSET, 0x0A, 5)
    with pytest.raises(DecodeError) as info:
        from_item(Sample, _s(UID, stray), (1, 1))
    assert info.value.reason == ResultReason.INVALID_FIELD


def test_unknown_tag_goes_to_extra_when_declared() -> None:
    stray = Item(Tag.OFFSET, 0x0A, 5)
    obj = from_item(WithExtra, _s(UID, stray), (1, 1))
    assert obj.extra == [stray]
    assert to_item(obj, S, (1, 1)).value == [UID, stray]


def test_missing_required_field_is_invalid_message() -> None:
    with pytest.raises(DecodeError) as info:
        from_item(WithExtra, _s(), (1, 1))
    assert info.value.reason == ResultReason.INVALID_MESSAGE
    with pytest.raises(DecodeError) as info:
        from_item(Sample, _s(Item(Tag.PROTOCOL_VERSION, STRUCTURE, [])), (1, 1))
    assert info.value.reason == ResultReason.INVALID_MESSAGE
    with pytest.raises(EncodeError):
        to_item(WithExtra(), S, (1, 1))


def test_wrong_type_is_invalid_field() -> None:
    for bad in (
        Item(Tag.OBJECT_TYPE, INTEGER, 2),
        Item(Tag.ATTRIBUTE_NAME, INTEGER, 2),
        Item(Tag.PROTOCOL_VERSION, INTEGER, 2),
    ):
        with pytest.raises(DecodeError) as info:
            from_item(Sample, _s(bad), (1, 1))
        assert info.value.reason == ResultReason.INVALID_FIELD
    with pytest.raises(DecodeError):
        from_item(Sample, Item(S, INTEGER, 1), (1, 1))


def test_duplicate_single_field_is_invalid_message() -> None:
    with pytest.raises(DecodeError) as info:
        from_item(Sample, _s(UID, UID), (1, 1))
    assert info.value.reason == ResultReason.INVALID_MESSAGE


def test_variant_uid_keeps_other_types_raw() -> None:
    placeholder = Item(Tag.UNIQUE_IDENTIFIER, ENUMERATION, 1)
    obj = from_item(Sample, _s(placeholder), (2, 1))
    assert obj.uid == placeholder
    assert to_item(obj, S, (2, 1)).value == [placeholder]


def test_errors_never_contain_values() -> None:
    secret = "s3cr3t-key-material"
    with pytest.raises(DecodeError) as info:
        from_item(Sample, _s(Item(Tag.OBJECT_TYPE, TEXT_STRING, secret)), (1, 1))
    assert secret not in str(info.value)
