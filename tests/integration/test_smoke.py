"""The server answers over mutual TLS in the client's protocol version."""

from __future__ import annotations

from kmipd.protocol import messages
from kmipd.protocol._generated import ObjectType, Operation, ResultStatus
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.payloads import CreateRequest, GetRequest
from kmipd.protocol.ttlv import ENUMERATION, INTEGER
from tests.support.server import KmipdServer


def request(version: tuple[int, int], operation: Operation, payload: object) -> bytes:
    return messages.encode_request(
        messages.RequestMessage(
            header=messages.RequestHeader(protocol_version=ProtocolVersion.of(version)),
            batch_items=[messages.RequestBatchItem(operation=operation, payload=payload)],
        )
    )


def test_create_then_get_in_1_1(kmipd_server: KmipdServer) -> None:
    template = TemplateAttribute(
        attributes=[
            Attribute("Cryptographic Algorithm", 3, None, ENUMERATION),
            Attribute("Cryptographic Length", 256, None, INTEGER),
            Attribute("Cryptographic Usage Mask", 12, None, INTEGER),
        ]
    )
    create = request(
        (1, 1),
        Operation.CREATE,
        CreateRequest(object_type=ObjectType.SYMMETRIC_KEY, template_attribute=template),
    )
    created = messages.decode_response(kmipd_server.call(create))
    assert created.version == (1, 1)
    item = created.batch_items[0]
    assert item.result_status == ResultStatus.SUCCESS, item.result_message
    uid = item.payload.unique_identifier

    got = messages.decode_response(
        kmipd_server.call(request((1, 1), Operation.GET, GetRequest(unique_identifier=uid)))
    )
    block = got.batch_items[0].payload.managed_object.key_block
    assert len(block.key_value.key_material) == 32
    assert block.cryptographic_length == 256
