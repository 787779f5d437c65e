"""vCenter-shaped KMIP for tests: KMIP 1.1 requests, ``QLKC`` batch IDs, and checks.

vCenter 7.0.3 (see ../shared/reference/vcenter-kmip.md) sends KMIP 1.1 with only
ProtocolVersion and BatchCount in the header, starts every connection with a DiscoverVersions
that has no Unique Batch Item ID, and numbers every other batch item ``QLKC`` + a
little-endian 32-bit counter. The helpers here speak that way and check the answers the way
vCenter relies on them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from kmipd.protocol import messages, tables, ttlv
from kmipd.protocol._generated import Operation, ResultStatus, Tag
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.payloads import (
    AddAttributeRequest,
    CreateRequest,
    DiscoverVersionsRequest,
    GetAttributesRequest,
    GetRequest,
    QueryRequest,
    UidRequest,
)
from kmipd.protocol.ttlv import ENUMERATION, INTEGER, TEXT_STRING, Item
from tests.support.server import KmipConnection

KMIP_1_1 = (1, 1)
# The only fields a KMIP 1.1 response header has (KMIP 1.1 §7.2).
RESPONSE_HEADER_1_1 = frozenset((Tag.PROTOCOL_VERSION, Tag.TIME_STAMP, Tag.BATCH_COUNT))

AES = 3
ENCRYPT_DECRYPT = 12  # Cryptographic Usage Mask Encrypt | Decrypt, as vCenter asks
PRODUCT_TAGS = (
    ("x-Product_Version", "7.0.3 build-19480866"),
    ("x-Vendor", "VMware, Inc."),
    ("x-Product", "VMware vSphere"),
)


def batch_id(counter: int) -> bytes:
    """vCenter's Unique Batch Item ID: ASCII ``QLKC`` and a little-endian 32-bit counter."""
    return b"QLKC" + struct.pack("<I", counter)


def vcenter_key_template() -> TemplateAttribute:
    """Create's template as vCenter sends it: AES, mask 12, 256 bits; no Name, no dates."""
    return TemplateAttribute(
        attributes=[
            Attribute("Cryptographic Algorithm", AES, None, ENUMERATION),
            Attribute("Cryptographic Usage Mask", ENCRYPT_DECRYPT, None, INTEGER),
            Attribute("Cryptographic Length", 256, None, INTEGER),
        ]
    )


def encode_1_1(items: list[messages.RequestBatchItem]) -> bytes:
    return messages.encode_request(
        messages.RequestMessage(
            header=messages.RequestHeader(protocol_version=ProtocolVersion.of(KMIP_1_1)),
            batch_items=items,
        )
    )


def walk(item: Item, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Item]]:
    """Every item of a TTLV tree with the tag path that leads to it."""
    here = (*path, item.tag)
    yield here, item
    if item.type == ttlv.STRUCTURE:
        for child in item.value:
            yield from walk(child, here)


def assert_kmip_1_1_only(response: bytes) -> Item:
    """The response speaks KMIP 1.1 and nothing newer: header 1.1 with only 1.1 header fields,
    every tag and every enumeration value defined in 1.1. Returns the decoded tree."""
    tree = ttlv.decode(response)
    assert tree.tag == Tag.RESPONSE_MESSAGE
    header = tree.find(Tag.RESPONSE_HEADER)
    assert header is not None
    version = header.find(Tag.PROTOCOL_VERSION)
    assert version is not None
    major = version.find(Tag.PROTOCOL_VERSION_MAJOR)
    minor = version.find(Tag.PROTOCOL_VERSION_MINOR)
    assert (major.value if major else None, minor.value if minor else None) == KMIP_1_1
    extra = {c.tag for c in header.value} - RESPONSE_HEADER_1_1
    assert not extra, f"response header has fields KMIP 1.1 does not: {sorted(map(hex, extra))}"
    for path, item in walk(tree):
        # Inside a DiscoverVersions answer, newer versions are listed as plain integers.
        assert tables.tag_def(item.tag, KMIP_1_1) is not None, (
            f"tag 0x{item.tag:06X} at {[hex(t) for t in path]} is not defined in KMIP 1.1"
        )
        if item.type == ttlv.ENUMERATION:
            enum = tables.enum_for_tag(item.tag)
            if enum is not None and item.tag != Tag.ATTRIBUTE_VALUE:
                assert enum.variant(item.value, KMIP_1_1) is not None, (
                    f"{enum.name} value {item.value} at {[hex(t) for t in path]} "
                    "is not defined in KMIP 1.1"
                )
    return tree


class VCenterSession:
    """One vCenter-style TLS connection: ``DV0`` first, then numbered batch items.

    In the capture the counter restarts in every message: a one-item message has ID
    ``QLKC 01000000``, a three-item AddAttribute batch has ``01``, ``02``, ``03``.
    """

    def __init__(self, connection: KmipConnection) -> None:
        self.connection = connection
        self.messages = 0
        self.items = 0

    def dv0(self) -> messages.ResponseMessage:
        """DiscoverVersions, no batch item ID, empty payload; checks the answer."""
        response = self.send(
            [self.item(Operation.DISCOVER_VERSIONS, DiscoverVersionsRequest())], numbered=False
        )
        versions = [v.as_tuple() for v in response.batch_items[0].payload.protocol_versions]
        assert KMIP_1_1 in versions, versions
        return response

    def send(
        self,
        items: list[messages.RequestBatchItem],
        *,
        numbered: bool = True,
        expect_success: bool = True,
    ) -> messages.ResponseMessage:
        """One request message; checks 1.1-only answer, count, echoed IDs and Operations."""
        for position, item in enumerate(items, 1):
            item.unique_batch_item_id = batch_id(position) if numbered else None
        raw = self.connection.call(encode_1_1(items))
        assert_kmip_1_1_only(raw)
        response = messages.decode_response(raw)
        self.messages += 1
        self.items += len(items)
        assert response.version == KMIP_1_1
        assert response.header is not None
        assert response.header.batch_count == len(response.batch_items)
        if expect_success:
            assert len(response.batch_items) == len(items)
        else:  # with the default Stop option, the items after a failure are not answered
            assert 1 <= len(response.batch_items) <= len(items)
        for asked, got in zip(items, response.batch_items, strict=False):
            assert got.unique_batch_item_id == asked.unique_batch_item_id
            assert got.operation == asked.operation
            if expect_success:
                assert got.result_status == ResultStatus.SUCCESS, (
                    f"{Operation(asked.operation).name}: {got.result_reason} {got.result_message}"
                )
        return response

    def item(self, operation: Operation, payload: Any) -> messages.RequestBatchItem:
        return messages.RequestBatchItem(operation=operation, payload=payload)

    def one(self, operation: Operation, payload: Any) -> Any:
        """A one-item message that must succeed; its response payload."""
        return self.send([self.item(operation, payload)]).batch_items[0].payload

    # vCenter's operations, as it sends them.

    def discover_versions(self) -> list[tuple[int, int]]:
        payload = self.one(Operation.DISCOVER_VERSIONS, DiscoverVersionsRequest())
        return [v.as_tuple() for v in payload.protocol_versions]

    def query_server_information(self) -> str | None:
        payload = self.one(Operation.QUERY, QueryRequest(query_functions=[3]))
        return payload.vendor_identification  # type: ignore[no-any-return]

    def create_key(self) -> str:
        payload = self.one(
            Operation.CREATE,
            CreateRequest(object_type=2, template_attribute=vcenter_key_template()),
        )
        assert isinstance(payload.unique_identifier, str)
        return payload.unique_identifier

    def get(self, uid: str) -> Any:
        return self.one(Operation.GET, GetRequest(unique_identifier=uid))

    def get_attributes(self, uid: str, *names: str) -> list[Attribute]:
        payload = self.one(
            Operation.GET_ATTRIBUTES,
            GetAttributesRequest(unique_identifier=uid, attribute_names=list(names)),
        )
        assert payload.unique_identifier == uid
        return list(payload.attributes)

    def state(self, uid: str) -> int:
        attributes = self.get_attributes(uid, "State")
        assert len(attributes) == 1 and attributes[0].name == "State", attributes
        return int(attributes[0].value)

    def activate(self, uid: str) -> None:
        payload = self.one(Operation.ACTIVATE, UidRequest(unique_identifier=uid))
        assert payload.unique_identifier == uid

    def tag(self, uid: str, tags: tuple[tuple[str, str], ...]) -> None:
        """vCenter's tagging step: probe each name alone, then add them all in one batch."""
        for name, _ in tags:
            assert self.get_attributes(uid, name) == [], f"{name} already set on {uid}"
        items = [
            self.item(
                Operation.ADD_ATTRIBUTE,
                AddAttributeRequest(
                    unique_identifier=uid, attribute=Attribute(name, value, None, TEXT_STRING)
                ),
            )
            for name, value in tags
        ]
        response = self.send(items)
        for (name, value), got in zip(tags, response.batch_items, strict=True):
            assert got.operation == Operation.ADD_ATTRIBUTE
            assert got.payload.unique_identifier == uid
            assert got.payload.attribute is not None
            assert (got.payload.attribute.name, got.payload.attribute.value) == (name, value)
