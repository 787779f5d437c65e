"""The binary TTLV codec: values, limits, and every malformation named by the spec."""

from __future__ import annotations

import struct
import time

import pytest

from kmipd.protocol import ttlv
from kmipd.protocol._generated import ResultReason
from kmipd.protocol.errors import DecodeError, EncodeError
from kmipd.protocol.limits import Limits
from kmipd.protocol.ttlv import Item

TAG = 0x420020
PARENT = 0x420078


def header(tag: int, typ: int, length: int) -> bytes:
    return struct.pack(">II", tag << 8 | typ, length)


def structure(*children: bytes, tag: int = PARENT) -> bytes:
    body = b"".join(children)
    return header(tag, ttlv.STRUCTURE, len(body)) + body


@pytest.mark.parametrize(
    ("item", "hex_"),
    [
        (Item(TAG, ttlv.INTEGER, 8), "42002002000000040000000800000000"),
        (Item(TAG, ttlv.INTEGER, -1), "4200200200000004ffffffff00000000"),
        (Item(TAG, ttlv.LONG_INTEGER, 123456789000000000), "420020030000000801b69b4ba5749200"),
        (Item(TAG, ttlv.ENUMERATION, 255), "4200200500000004000000ff00000000"),
        (Item(TAG, ttlv.BOOLEAN, True), "42002006000000080000000000000001"),
        (
            Item(TAG, ttlv.TEXT_STRING, "Hello World"),
            "420020070000000b48656c6c6f20576f726c640000000000",
        ),
        (Item(TAG, ttlv.BYTE_STRING, b"\x01\x02\x03"), "42002008000000030102030000000000"),
        (Item(TAG, ttlv.DATE_TIME, 0x47DA67F8), "42002009000000080000000047da67f8"),
        (Item(TAG, ttlv.INTERVAL, 864000), "4200200a00000004000d2f0000000000"),
        (Item(TAG, ttlv.BIG_INTEGER, -1), "4200200400000008ffffffffffffffff"),
        (Item(TAG, ttlv.BIG_INTEGER, 1 << 63), "420020040000001000000000000000008000000000000000"),
        (Item(TAG, ttlv.DATE_TIME_EXTENDED, 1), "4200200b000000080000000000000001"),
        (Item(TAG, ttlv.TEXT_STRING, ""), "4200200700000000"),
    ],
)
def test_each_type_encodes_and_decodes(item: Item, hex_: str) -> None:
    assert ttlv.encode(item).hex() == hex_
    assert ttlv.decode(bytes.fromhex(hex_)) == item


def test_nested_structure_round_trips() -> None:
    tree = Item(
        PARENT,
        ttlv.STRUCTURE,
        [
            Item(TAG, ttlv.INTEGER, 1),
            Item(0x420021, ttlv.STRUCTURE, [Item(TAG, ttlv.BOOLEAN, False)]),
        ],
    )
    assert ttlv.decode(ttlv.encode(tree)) == tree


def test_find_children() -> None:
    tree = Item(PARENT, ttlv.STRUCTURE, [Item(TAG, ttlv.INTEGER, 1), Item(TAG, ttlv.INTEGER, 2)])
    assert tree.find(TAG) == Item(TAG, ttlv.INTEGER, 1)
    assert tree.find(0x420099) is None
    assert [c.value for c in tree.find_all(TAG)] == [1, 2]


def rejected(data: bytes, limits: Limits | None = None) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        ttlv.decode(data, limits) if limits else ttlv.decode(data)
    assert info.value.reason == ResultReason.INVALID_MESSAGE
    return info.value


def test_rejects_length_ffffffff_without_allocating() -> None:
    started = time.perf_counter()
    error = rejected(header(PARENT, ttlv.STRUCTURE, 0xFFFFFFFF))
    assert "longer than its parent" in str(error)
    assert time.perf_counter() - started < 1
    rejected(header(TAG, ttlv.BYTE_STRING, 0xFFFFFFFF))


def test_rejects_child_longer_than_parent() -> None:
    child = header(TAG, ttlv.INTEGER, 4) + bytes(8)
    # Parent claims 8 bytes, its child needs 16.
    rejected(header(PARENT, ttlv.STRUCTURE, 8) + child)
    # A text child whose padding runs past the parent.
    text = header(TAG, ttlv.TEXT_STRING, 3) + b"abc" + bytes(5)
    rejected(header(PARENT, ttlv.STRUCTURE, 8 + 3) + text)


def test_rejects_deep_nesting() -> None:
    data = b""
    for _ in range(10_000):
        data = structure(data)
    error = rejected(data, Limits(max_frame_bytes=1 << 20))
    assert "nesting deeper" in str(error)


def test_accepts_nesting_up_to_the_limit() -> None:
    data = b""
    for _ in range(32):
        data = structure(data)
    ttlv.decode(data)


@pytest.mark.parametrize(
    "data",
    [
        header(TAG, ttlv.INTEGER, 4) + b"\x00\x00\x00\x01\x00\x00\x00\x01",
        header(TAG, ttlv.ENUMERATION, 4) + b"\x00\x00\x00\x01\x00\x00\x01\x00",
        header(TAG, ttlv.TEXT_STRING, 3) + b"abc\x00\x00\x00\x00\x01",
        header(TAG, ttlv.BYTE_STRING, 1) + b"\x01\x00\x00\x00\x00\x00\x00\xff",
    ],
    ids=["integer", "enumeration", "text", "bytes"],
)
def test_rejects_non_zero_padding(data: bytes) -> None:
    assert "padding" in str(rejected(data))


@pytest.mark.parametrize("raw", [2, 0x100, 0xFFFFFFFFFFFFFFFF])
def test_rejects_boolean_other_than_0_or_1(raw: int) -> None:
    rejected(header(TAG, ttlv.BOOLEAN, 8) + struct.pack(">Q", raw))


@pytest.mark.parametrize(
    ("typ", "length"),
    [
        (ttlv.INTEGER, 8),
        (ttlv.INTEGER, 0),
        (ttlv.ENUMERATION, 8),
        (ttlv.INTERVAL, 2),
        (ttlv.LONG_INTEGER, 4),
        (ttlv.BOOLEAN, 4),
        (ttlv.DATE_TIME, 16),
        (ttlv.DATE_TIME_EXTENDED, 4),
        (ttlv.BIG_INTEGER, 4),
        (ttlv.BIG_INTEGER, 0),
    ],
)
def test_rejects_fixed_length_type_with_wrong_length(typ: int, length: int) -> None:
    padded = (length + 7) & ~7
    rejected(header(TAG, typ, length) + bytes(max(padded, 8)))


def test_rejects_invalid_utf8() -> None:
    error = rejected(header(TAG, ttlv.TEXT_STRING, 2) + b"\xc3\x28" + bytes(6))
    assert "UTF-8" in str(error)


def test_rejects_trailing_bytes_inside_a_structure() -> None:
    inner = header(TAG, ttlv.INTEGER, 4) + bytes(8)
    rejected(header(PARENT, ttlv.STRUCTURE, 16 + 4) + inner + b"\x42\x00\x20\x02" + bytes(4))


def test_rejects_trailing_bytes_after_the_message() -> None:
    rejected(ttlv.encode(Item(TAG, ttlv.INTEGER, 1)) + bytes(8))


def test_rejects_unknown_type_and_tag_space() -> None:
    rejected(header(TAG, 0x0C, 0))
    rejected(header(0x110020, ttlv.INTEGER, 4) + bytes(8))


def test_rejects_structure_length_not_multiple_of_8() -> None:
    rejected(header(PARENT, ttlv.STRUCTURE, 4) + bytes(4))


def test_field_and_item_limits() -> None:
    big_text = ttlv.encode(Item(TAG, ttlv.TEXT_STRING, "a" * 100))
    assert "field limit" in str(rejected(big_text, Limits(max_field_bytes=64)))
    many = structure(*[ttlv.encode(Item(TAG, ttlv.INTEGER, i)) for i in range(11)])
    assert "more than 10 items" in str(rejected(many, Limits(max_items_per_structure=10)))
    assert "exceeds the limit" in str(rejected(many, Limits(max_frame_bytes=64)))


def test_error_message_never_carries_input_values() -> None:
    secret = b"\xde\xad\xbe\xef" * 2
    error = rejected(header(TAG, ttlv.BYTE_STRING, 8) + secret + b"trailing")
    assert "dead" not in str(error).lower()
    assert "deadbeef" not in repr(error).lower()


@pytest.mark.parametrize(
    "item",
    [
        Item(TAG, ttlv.INTEGER, 1 << 31),
        Item(TAG, ttlv.ENUMERATION, -1),
        Item(TAG, ttlv.INTERVAL, 1 << 32),
        Item(TAG, ttlv.LONG_INTEGER, 1 << 63),
        Item(TAG, ttlv.TEXT_STRING, b"bytes"),
        Item(TAG, ttlv.BYTE_STRING, "text"),
        Item(TAG, ttlv.BOOLEAN, 1),
        Item(TAG, ttlv.BIG_INTEGER, "1"),
        Item(TAG, 0x0C, 0),
        Item(TAG, ttlv.STRUCTURE, 5),
    ],
)
def test_encoder_refuses_bad_values_with_encode_error(item: Item) -> None:
    with pytest.raises(EncodeError):
        ttlv.encode(item)


def test_big_integer_is_sign_extended_to_a_multiple_of_8() -> None:
    assert ttlv.big_integer_bytes(0) == bytes(8)
    assert ttlv.big_integer_bytes(255) == bytes(7) + b"\xff"
    assert ttlv.big_integer_bytes(-(1 << 63)) == b"\x80" + bytes(7)
    assert len(ttlv.big_integer_bytes(1 << 63)) == 16


def test_one_structure_over_the_depth_limit_is_refused() -> None:
    data = b""
    for _ in range(33):
        data = structure(data)
    rejected(data)
