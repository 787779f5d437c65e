"""Micro-benchmark of the KMIP codec (not a test): messages per second on one core.

Builds a typical vCenter Get request and Get response (KMIP 1.1, a 32-byte AES key) and times
  - tree:  binary TTLV -> Item tree -> binary TTLV
  - typed: binary TTLV -> typed message -> binary TTLV (what the server does per message)

Run: python bench/codec_bench.py [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from kmipd.protocol import messages, ttlv
from kmipd.protocol._generated import (
    CryptographicAlgorithm,
    KeyFormatType,
    ObjectType,
    Operation,
    ResultStatus,
)
from kmipd.protocol.objects import KeyBlock, KeyValue, ProtocolVersion, SymmetricKey
from kmipd.protocol.payloads import GetRequest, GetResponse


def get_request() -> bytes:
    message = messages.RequestMessage(
        header=messages.RequestHeader(protocol_version=ProtocolVersion(1, 1), batch_count=1),
        batch_items=[
            messages.RequestBatchItem(
                operation=Operation.GET,
                unique_batch_item_id=b"QLKC\x05\x00\x00\x00",
                payload=GetRequest(unique_identifier="6f1b2c9e-3a4d-4f7e-9b1a-2c3d4e5f6a7b"),
            )
        ],
    )
    return messages.encode_request(message)


def get_response() -> bytes:
    key = SymmetricKey(
        key_block=KeyBlock(
            key_format_type=KeyFormatType.RAW,
            key_value=KeyValue(key_material=os.urandom(32)),
            cryptographic_algorithm=CryptographicAlgorithm.AES,
            cryptographic_length=256,
        )
    )
    message = messages.ResponseMessage(
        header=messages.ResponseHeader(
            protocol_version=ProtocolVersion(1, 1), time_stamp=int(time.time()), batch_count=1
        ),
        batch_items=[
            messages.ResponseBatchItem(
                operation=Operation.GET,
                unique_batch_item_id=b"QLKC\x05\x00\x00\x00",
                result_status=ResultStatus.SUCCESS,
                payload=GetResponse(
                    object_type=ObjectType.SYMMETRIC_KEY,
                    unique_identifier="6f1b2c9e-3a4d-4f7e-9b1a-2c3d4e5f6a7b",
                    managed_object=key,
                ),
            )
        ],
    )
    return messages.encode_response(message)


def rate(round_trip: Callable[[], object], seconds: float) -> float:
    for _ in range(200):  # warm caches
        round_trip()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(500):
            round_trip()
        count += 500
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    request, response = get_request(), get_response()
    cases: list[tuple[str, Callable[[], object]]] = [
        ("Get request  tree ", lambda: ttlv.encode(ttlv.decode(request))),
        ("Get response tree ", lambda: ttlv.encode(ttlv.decode(response))),
        ("Get request  typed", lambda: messages.encode_request(messages.decode_request(request))),
        (
            "Get response typed",
            lambda: messages.encode_response(messages.decode_response(response)),
        ),
    ]
    print(f"{'message':<20}{'bytes':>7}{'round trips/s':>16}{'us each':>10}")
    for name, round_trip in cases:
        size = len(request if "request" in name else response)
        per_second = rate(round_trip, args.seconds)
        print(f"{name:<20}{size:>7}{per_second:>16,.0f}{1e6 / per_second:>10.1f}")


if __name__ == "__main__":
    main()
