"""A message may hold only so many items in all (``limits.max_items_per_message``), and a
structure stops being decoded at its item limit: many small items cannot hold the event
loop (the flood test of tests/integration/test_resource_limits.py showed 100,000 empty
structures costing half a second of decoding)."""

from __future__ import annotations

import struct
import time

import pytest

from kmipd.protocol import ttlv
from kmipd.protocol.errors import DecodeError
from kmipd.protocol.limits import Limits

EMPTY_STRUCTURE = struct.pack(">I", (0x420001 << 8) | ttlv.STRUCTURE) + struct.pack(">I", 0)


def structure(body: bytes) -> bytes:
    return struct.pack(">I", (0x420078 << 8) | ttlv.STRUCTURE) + struct.pack(">I", len(body)) + body


def test_items_spread_over_structures_are_counted_for_the_whole_message() -> None:
    # 4 structures of 6,000 empty items: each under the per-structure limit, 24,004 in all.
    message = structure(b"".join(structure(EMPTY_STRUCTURE * 6000) for _ in range(4)))
    with pytest.raises(DecodeError, match="more than 20000 items in one message"):
        ttlv.decode(message)
    assert ttlv.decode(message, Limits(max_items_per_message=30_000)) is not None


def test_a_structure_stops_at_its_item_limit() -> None:
    message = structure(EMPTY_STRUCTURE * 100_000)
    started = time.perf_counter()
    with pytest.raises(DecodeError, match="more than 10000 items in one structure"):
        ttlv.decode(message)
    assert time.perf_counter() - started < 5  # a hang guard; the point is not decoding 100k
