"""The frame reader: same messages whole, byte by byte, in random chunks, with trailing bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmipd.protocol import ttlv
from kmipd.protocol.errors import DecodeError
from kmipd.protocol.framing import FrameReader
from kmipd.protocol.limits import Limits
from kmipd.protocol.ttlv import Item

MESSAGES = [
    ttlv.encode(Item(0x420078, ttlv.STRUCTURE, [Item(0x420020, ttlv.INTEGER, i)] * (i % 4)))
    for i in range(6)
]


def frames(reader: FrameReader) -> list[bytes]:
    out = []
    while (frame := reader.next_frame()) is not None:
        out.append(frame)
    return out


def feed_in_chunks(data: bytes, cuts: list[int]) -> tuple[list[bytes], FrameReader]:
    reader = FrameReader()
    got: list[bytes] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        reader.receive_data(data[start:cut])
        got += frames(reader)
        start = max(start, cut)
    return got, reader


def test_whole_stream() -> None:
    got, reader = feed_in_chunks(b"".join(MESSAGES), [])
    assert got == MESSAGES
    assert reader.buffered == 0


def test_byte_by_byte() -> None:
    data = b"".join(MESSAGES)
    got, _ = feed_in_chunks(data, list(range(len(data))))
    assert got == MESSAGES


def test_trailing_bytes_stay_buffered() -> None:
    data = b"".join(MESSAGES) + MESSAGES[1][:5]
    got, reader = feed_in_chunks(data, [])
    assert got == MESSAGES
    assert reader.buffered == 5
    reader.receive_data(MESSAGES[1][5:])
    assert frames(reader) == [MESSAGES[1]]


@given(st.lists(st.integers(min_value=0, max_value=sum(map(len, MESSAGES))), max_size=30))
def test_any_chunking_gives_the_same_messages(cuts: list[int]) -> None:
    got, reader = feed_in_chunks(b"".join(MESSAGES), cuts)
    assert got == MESSAGES
    assert reader.buffered == 0


def test_oversized_length_rejected_from_the_header_alone() -> None:
    reader = FrameReader(Limits(max_frame_bytes=4096))
    with pytest.raises(DecodeError, match="exceeds the limit"):
        reader.receive_data(struct.pack(">II", 0x42007801, 0xFFFFFFF8))
    assert reader.buffered == 0
    with pytest.raises(DecodeError):  # it stays broken
        reader.next_frame()


def test_four_gib_header() -> None:
    reader = FrameReader()
    reader.receive_data(b"\x42\x00\x78\x01")
    assert reader.next_frame() is None
    with pytest.raises(DecodeError):
        reader.receive_data(b"\xff\xff\xff\xff")


@pytest.mark.parametrize(
    "head",
    [
        struct.pack(">II", 0x42007802, 8),  # not a structure
        struct.pack(">II", 0x11007801, 8),  # not a KMIP tag
        struct.pack(">II", 0x42007801, 12),  # structure length not a multiple of 8
    ],
)
def test_rejects_headers_that_cannot_start_a_message(head: bytes) -> None:
    reader = FrameReader()
    with pytest.raises(DecodeError):
        reader.receive_data(head)
