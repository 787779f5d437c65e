"""Typed messages against real traffic: the vCenter capture and the OASIS profile test cases.

Every message decodes into typed messages with every payload typed (no payload error, no raw
fallback) and re-encodes to identical bytes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kmipd.protocol import messages, ttlv
from kmipd.protocol._generated import (
    CryptographicAlgorithm,
    KeyFormatType,
    ObjectType,
    Operation,
    ResultReason,
    ResultStatus,
    Tag,
)
from kmipd.protocol.errors import DecodeError
from kmipd.protocol.limits import Limits
from kmipd.protocol.messages import (
    RequestBatchItem,
    RequestHeader,
    RequestMessage,
    ResponseBatchItem,
    ResponseHeader,
    ResponseMessage,
)
from kmipd.protocol.objects import KeyBlock, KeyValue, ProtocolVersion, SymmetricKey
from kmipd.protocol.payloads import (
    REQUEST_PAYLOADS,
    RESPONSE_PAYLOADS,
    AddAttributeRequest,
    GetAttributesRequest,
    GetRequest,
    GetResponse,
)
from kmipd.protocol.ttlv import STRUCTURE, TEXT_STRING, Item
from tests.support.shared import KMIP_TESTCASES, VCENTER_CAPTURE, require

FIXED_NOW = 1_700_000_000
V1_PROFILES = ("SKLC", "SKFF", "OMOS", "SASED", "TL")
V2_PROFILES = ("BL", *V1_PROFILES)
V1_FOLDERS = ("v1.0", "v1.1", "v1.2", "v1.3", "v1.4")


def _assert_typed(msg: RequestMessage | ResponseMessage) -> None:
    for item in msg.batch_items:
        assert item.payload_error is None, item.payload_error
        assert item.payload is None or not item.payload_is_raw, item.operation


# --- vCenter capture ---------------------------------------------------------------------------


def _capture() -> list[dict]:
    path = require(VCENTER_CAPTURE / "conversation.json")
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.shared
def test_vcenter_capture_round_trips_through_typed_messages() -> None:
    counts: Counter[str] = Counter()
    for entry in _capture():
        data = bytes.fromhex(entry["hex"])
        if entry["direction"] == "request":
            request = messages.decode_request(data)
            _assert_typed(request)
            assert messages.encode_request(request) == data, entry["seq"]
        else:
            response = messages.decode_response(data)
            _assert_typed(response)
            assert messages.encode_response(response) == data, entry["seq"]
        counts[entry["direction"]] += 1
    assert counts == {"request": 102, "response": 102}


@pytest.mark.shared
def test_vcenter_add_attribute_batch_is_typed() -> None:
    entry = next(e for e in _capture() if e["direction"] == "request" and len(e["operation"]) == 3)
    request = messages.decode_request(bytes.fromhex(entry["hex"]))
    assert request.version == (1, 1)
    assert [bi.unique_batch_item_id for bi in request.batch_items] == [
        b"QLKC" + bytes([n, 0, 0, 0]) for n in (1, 2, 3)
    ]
    names = []
    for batch_item in request.batch_items:
        assert batch_item.operation is Operation.ADD_ATTRIBUTE
        payload = batch_item.payload
        assert isinstance(payload, AddAttributeRequest)
        assert isinstance(payload.unique_identifier, str)
        assert payload.attribute is not None and payload.attribute.type == TEXT_STRING
        names.append(payload.attribute.name)
    assert all(name.startswith("x-") for name in names)


@pytest.mark.shared
def test_vcenter_get_response_is_typed() -> None:
    entry = next(
        e for e in _capture() if e["direction"] == "response" and e["operation"] == ["Get"]
    )
    response = messages.decode_response(bytes.fromhex(entry["hex"]))
    payload = response.batch_items[0].payload
    assert isinstance(payload, GetResponse)
    assert payload.object_type is ObjectType.SYMMETRIC_KEY
    key = payload.managed_object
    assert isinstance(key, SymmetricKey) and key.key_block is not None
    assert key.key_block.key_format_type is KeyFormatType.RAW
    assert key.key_block.cryptographic_algorithm is CryptographicAlgorithm.AES
    assert key.key_block.cryptographic_length == 256
    assert key.key_block.key_value is not None
    assert len(key.key_block.key_value.key_material) == 32


# --- OASIS profile test cases ------------------------------------------------------------------


def _oasis_files() -> list[Path]:
    from tests.support import oasis

    files = []
    for folder, profiles in [(v, V1_PROFILES) for v in V1_FOLDERS] + [("v2.1", V2_PROFILES)]:
        for path in oasis.case_files(folder):
            if "profiles" in path.parts and path.name.split("-")[0] in profiles:
                files.append(path)
    return files


@pytest.mark.shared
def test_oasis_profile_messages_round_trip_through_typed_messages() -> None:
    require(KMIP_TESTCASES)
    from kmipd.protocol.xml_encoding import item_from_element
    from tests.support import oasis

    counts: Counter[str] = Counter()
    operations: Counter[str] = Counter()
    files = _oasis_files()
    for path in files:
        for step in oasis.load_case(path).steps:
            for kind, element in (("request", step.request), ("response", step.response)):
                if element is None:
                    continue
                concrete = oasis.substitute(element, now=FIXED_NOW, unbound="fill")
                tree = item_from_element(concrete)
                if kind == "request":
                    msg: RequestMessage | ResponseMessage = messages.request_from_item(tree)
                    again = messages.request_to_item(msg)  # type: ignore[arg-type]
                else:
                    msg = messages.response_from_item(tree)
                    again = messages.response_to_item(msg)  # type: ignore[arg-type]
                _assert_typed(msg)
                assert ttlv.encode(again) == ttlv.encode(tree), f"{path.name} {kind}"
                counts[kind] += 1
                operations.update(Operation(bi.operation).name for bi in msg.batch_items)
    print(f"OASIS typed round trips: {len(files)} files, {dict(counts)}")
    assert len(files) == 175
    assert counts == {"request": 1002, "response": 1002}
    assert set(operations) <= {op.name for op in REQUEST_PAYLOADS}


def test_payload_registries_cover_the_same_operations() -> None:
    assert set(REQUEST_PAYLOADS) == set(RESPONSE_PAYLOADS)


# --- Message-level rules -----------------------------------------------------------------------


def _request(*batch_items: RequestBatchItem, count: int | None = None) -> RequestMessage:
    header = RequestHeader(protocol_version=ProtocolVersion.of((1, 1)), batch_count=count)
    return RequestMessage(header=header, batch_items=list(batch_items))


def _get(uid: str, batch_id: bytes | None = None) -> RequestBatchItem:
    return RequestBatchItem(
        operation=Operation.GET,
        unique_batch_item_id=batch_id,
        payload=GetRequest(unique_identifier=uid),
    )


def test_request_round_trip_and_batch_count_filled_in() -> None:
    data = messages.encode_request(_request(_get("1", b"\x01"), _get("2", b"\x02")))
    request = messages.decode_request(data)
    assert request.header is not None and request.header.batch_count == 2
    assert [bi.payload.unique_identifier for bi in request.batch_items] == ["1", "2"]
    assert request.batch_items[0].unique_batch_item_id == b"\x01"


def test_batch_count_mismatch_is_invalid_message() -> None:
    data = messages.encode_request(_request(_get("1"), _get("2"), count=3))
    with pytest.raises(DecodeError) as info:
        messages.decode_request(data)
    assert info.value.reason == ResultReason.INVALID_MESSAGE


def test_too_many_batch_items_is_refused() -> None:
    data = messages.encode_request(_request(*(_get(str(n)) for n in range(5))))
    with pytest.raises(DecodeError) as info:
        messages.decode_request(data, Limits(max_batch_count=4))
    assert info.value.reason == ResultReason.INVALID_MESSAGE
    assert len(messages.decode_request(data, Limits(max_batch_count=5)).batch_items) == 5


def test_a_bad_payload_fails_only_its_batch_item() -> None:
    bad_payload = Item(
        Tag.REQUEST_PAYLOAD,
        STRUCTURE,
        [
            Item(Tag.UNIQUE_IDENTIFIER, TEXT_STRING, "1"),
            Item(Tag.KEY_FORMAT_TYPE, TEXT_STRING, "s3cr3t"),
        ],
    )
    bad = RequestBatchItem(operation=Operation.GET, payload=bad_payload)
    data = messages.encode_request(_request(_get("1"), bad, _get("3")))
    request = messages.decode_request(data)
    first, second, third = request.batch_items
    assert first.payload_error is None and isinstance(first.payload, GetRequest)
    assert second.payload_error is not None
    assert second.payload_error.reason == ResultReason.INVALID_FIELD
    assert second.payload_is_raw and second.payload == bad_payload
    assert third.payload_error is None and third.payload.unique_identifier == "3"
    assert "s3cr3t" not in str(second.payload_error)  # never echo input values


def test_operation_without_payload_class_keeps_the_raw_payload() -> None:
    raw = Item(Tag.REQUEST_PAYLOAD, STRUCTURE, [Item(Tag.UNIQUE_IDENTIFIER, TEXT_STRING, "1")])
    item = RequestBatchItem(operation=Operation.ARCHIVE, payload=raw)
    request = messages.decode_request(messages.encode_request(_request(item)))
    assert request.batch_items[0].payload == raw
    assert request.batch_items[0].payload_error is None


def test_unknown_operation_value_is_kept_as_int() -> None:
    raw = Item(Tag.REQUEST_PAYLOAD, STRUCTURE, [])
    item = RequestBatchItem(operation=0x7777, payload=raw)
    request = messages.decode_request(messages.encode_request(_request(item)))
    assert request.batch_items[0].operation == 0x7777
    assert type(request.batch_items[0].operation) is int


def test_missing_header_is_invalid_message() -> None:
    message = Item(Tag.REQUEST_MESSAGE, STRUCTURE, [])
    with pytest.raises(DecodeError) as info:
        messages.decode_request(ttlv.encode(message))
    assert info.value.reason == ResultReason.INVALID_MESSAGE


def test_get_response_typed_round_trip() -> None:
    key = SymmetricKey(
        key_block=KeyBlock(
            key_format_type=KeyFormatType.RAW,
            key_value=KeyValue(key_material=bytes(32)),
            cryptographic_algorithm=CryptographicAlgorithm.AES,
            cryptographic_length=256,
        )
    )
    response = ResponseMessage(
        header=ResponseHeader(protocol_version=ProtocolVersion.of((1, 1)), time_stamp=FIXED_NOW),
        batch_items=[
            ResponseBatchItem(
                operation=Operation.GET,
                result_status=ResultStatus.SUCCESS,
                payload=GetResponse(
                    object_type=ObjectType.SYMMETRIC_KEY,
                    unique_identifier="k1",
                    managed_object=key,
                ),
            )
        ],
    )
    data = messages.encode_response(response)
    decoded = messages.decode_response(data)
    assert decoded == response
    assert messages.encode_response(decoded) == data


def test_get_attributes_names_in_1x_and_2x() -> None:
    for version in ((1, 1), (2, 1)):
        header = RequestHeader(protocol_version=ProtocolVersion.of(version))
        payload = GetAttributesRequest(unique_identifier="1", attribute_names=["State", "x-Name"])
        item = RequestBatchItem(operation=Operation.GET_ATTRIBUTES, payload=payload)
        msg = RequestMessage(header=header, batch_items=[item])
        tree = messages.request_to_item(msg)
        decoded = messages.request_from_item(tree)
        assert decoded.batch_items[0].payload == payload
        wire = tree.value[1].value[1].value  # BatchItem > RequestPayload > children
        tags = [child.tag for child in wire[1:]]
        if version < (2, 0):
            assert tags == [Tag.ATTRIBUTE_NAME, Tag.ATTRIBUTE_NAME]
        else:
            assert tags == [Tag.ATTRIBUTE_REFERENCE, Tag.ATTRIBUTE_REFERENCE]
            assert wire[1].value == Tag.STATE


def test_key_material_stays_out_of_reprs() -> None:
    from kmipd.protocol.objects import KeyBlock, KeyValue, OpaqueObject, SymmetricKey

    secret = bytes.fromhex("5ec2e7" * 8)
    key = SymmetricKey(key_block=KeyBlock(key_value=KeyValue(key_material=secret)))
    opaque = OpaqueObject(opaque_data_value=secret)
    for text in (repr(key), str(key), repr(opaque)):
        assert secret.hex() not in text
        assert repr(secret) not in text
