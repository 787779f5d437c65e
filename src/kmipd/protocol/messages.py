"""Request and response messages: header, batch items, and two-phase, per-item decoding.

Phase 1 decodes the header (with the version it announces) and every batch item, leaving
each payload as its raw :class:`Item`. Phase 2 types each payload from its Operation, in
the header's protocol version. A payload that fails phase 2 does not fail the message: its
batch item keeps the raw payload and records the :class:`DecodeError` in ``payload_error``,
so the server can answer that one item with the error's Result Reason. A payload whose
Operation has no payload class stays raw (the server answers Operation Not Supported).
"""

# kmip_field() returns a dataclasses.field(); ruff cannot tell.
# ruff: noqa: RUF009

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kmipd.protocol import ttlv
from kmipd.protocol._generated import (
    BatchErrorContinuationOption,
    Operation,
    ResultReason,
    ResultStatus,
    Tag,
)
from kmipd.protocol.codec import (
    ANY,
    BOOLEAN,
    BYTE_STRING,
    DATE_TIME,
    ENUMERATION,
    INTEGER,
    STRUCTURE,
    TEXT_STRING,
    Version,
    from_item,
    kmip_field,
    tag_name,
    to_item,
)
from kmipd.protocol.errors import DecodeError
from kmipd.protocol.limits import DEFAULT_LIMITS, Limits
from kmipd.protocol.objects import Authentication, ProtocolVersion
from kmipd.protocol.payloads import REQUEST_PAYLOADS, RESPONSE_PAYLOADS
from kmipd.protocol.ttlv import Item

__all__ = [
    "RequestBatchItem",
    "RequestHeader",
    "RequestMessage",
    "ResponseBatchItem",
    "ResponseHeader",
    "ResponseMessage",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "request_from_item",
    "request_to_item",
    "response_from_item",
    "response_to_item",
]


class _PayloadKind:
    """A batch item's payload: a raw Structure when decoded (typed in phase 2); encodes a
    typed payload or a raw Item."""

    item_type = STRUCTURE

    def decode(self, item: Item, version: Version) -> Item:
        return item

    def encode(self, value: Any, tag: int, version: Version) -> Item:
        if isinstance(value, Item):
            return value if value.tag == tag else Item(tag, value.type, value.value)
        return to_item(value, tag, version)


_PAYLOAD = _PayloadKind()


@dataclass(slots=True)
class RequestHeader:
    protocol_version: ProtocolVersion | None = kmip_field(
        Tag.PROTOCOL_VERSION, ProtocolVersion, required=True
    )
    maximum_response_size: int | None = kmip_field(Tag.MAXIMUM_RESPONSE_SIZE, INTEGER)
    client_correlation_value: str | None = kmip_field(Tag.CLIENT_CORRELATION_VALUE, TEXT_STRING)
    server_correlation_value: str | None = kmip_field(Tag.SERVER_CORRELATION_VALUE, TEXT_STRING)
    asynchronous_indicator: bool | None = kmip_field(Tag.ASYNCHRONOUS_INDICATOR, BOOLEAN)
    attestation_capable_indicator: bool | None = kmip_field(
        Tag.ATTESTATION_CAPABLE_INDICATOR, BOOLEAN
    )
    attestation_types: list[int] = kmip_field(Tag.ATTESTATION_TYPE, ENUMERATION, repeated=True)
    authentication: Authentication | None = kmip_field(Tag.AUTHENTICATION, Authentication)
    batch_error_continuation_option: BatchErrorContinuationOption | int | None = kmip_field(
        Tag.BATCH_ERROR_CONTINUATION_OPTION, ENUMERATION
    )
    batch_order_option: bool | None = kmip_field(Tag.BATCH_ORDER_OPTION, BOOLEAN)
    time_stamp: int | None = kmip_field(Tag.TIME_STAMP, DATE_TIME)
    batch_count: int | None = kmip_field(Tag.BATCH_COUNT, INTEGER, required=True)


@dataclass(slots=True)
class ResponseHeader:
    protocol_version: ProtocolVersion | None = kmip_field(
        Tag.PROTOCOL_VERSION, ProtocolVersion, required=True
    )
    time_stamp: int | None = kmip_field(Tag.TIME_STAMP, DATE_TIME, required=True)
    nonce: Item | None = kmip_field(Tag.NONCE, ANY)
    server_hashed_password: bytes | None = kmip_field(Tag.SERVER_HASHED_PASSWORD, BYTE_STRING)
    attestation_types: list[int] = kmip_field(Tag.ATTESTATION_TYPE, ENUMERATION, repeated=True)
    client_correlation_value: str | None = kmip_field(Tag.CLIENT_CORRELATION_VALUE, TEXT_STRING)
    server_correlation_value: str | None = kmip_field(Tag.SERVER_CORRELATION_VALUE, TEXT_STRING)
    batch_count: int | None = kmip_field(Tag.BATCH_COUNT, INTEGER, required=True)


@dataclass(slots=True)
class RequestBatchItem:
    """``payload`` is a typed payload, or the raw Item when it has no class or failed."""

    operation: Operation | int | None = kmip_field(Tag.OPERATION, ENUMERATION, required=True)
    ephemeral: bool | None = kmip_field(Tag.EPHEMERAL, BOOLEAN)
    unique_batch_item_id: bytes | None = kmip_field(Tag.UNIQUE_BATCH_ITEM_ID, BYTE_STRING)
    payload: Any = kmip_field(Tag.REQUEST_PAYLOAD, _PAYLOAD, required=True)
    message_extension: Item | None = kmip_field(Tag.MESSAGE_EXTENSION, ANY)
    payload_error: DecodeError | None = None

    @property
    def payload_is_raw(self) -> bool:
        return isinstance(self.payload, Item)


@dataclass(slots=True)
class ResponseBatchItem:
    """``payload`` is a typed payload, or the raw Item when it has no class or failed."""

    operation: Operation | int | None = kmip_field(Tag.OPERATION, ENUMERATION)
    unique_batch_item_id: bytes | None = kmip_field(Tag.UNIQUE_BATCH_ITEM_ID, BYTE_STRING)
    result_status: ResultStatus | int | None = kmip_field(
        Tag.RESULT_STATUS, ENUMERATION, required=True
    )
    result_reason: ResultReason | int | None = kmip_field(Tag.RESULT_REASON, ENUMERATION)
    result_message: str | None = kmip_field(Tag.RESULT_MESSAGE, TEXT_STRING)
    asynchronous_correlation_value: bytes | None = kmip_field(
        Tag.ASYNCHRONOUS_CORRELATION_VALUE, BYTE_STRING
    )
    payload: Any = kmip_field(Tag.RESPONSE_PAYLOAD, _PAYLOAD)
    message_extension: Item | None = kmip_field(Tag.MESSAGE_EXTENSION, ANY)
    payload_error: DecodeError | None = None

    @property
    def payload_is_raw(self) -> bool:
        return isinstance(self.payload, Item)


@dataclass(slots=True)
class RequestMessage:
    header: RequestHeader | None = kmip_field(Tag.REQUEST_HEADER, RequestHeader, required=True)
    batch_items: list[RequestBatchItem] = kmip_field(
        Tag.BATCH_ITEM, RequestBatchItem, repeated=True, required=True
    )

    @property
    def version(self) -> Version:
        return _version_of(self.header)


@dataclass(slots=True)
class ResponseMessage:
    header: ResponseHeader | None = kmip_field(Tag.RESPONSE_HEADER, ResponseHeader, required=True)
    batch_items: list[ResponseBatchItem] = kmip_field(
        Tag.BATCH_ITEM, ResponseBatchItem, repeated=True, required=True
    )

    @property
    def version(self) -> Version:
        return _version_of(self.header)


def _version_of(header: RequestHeader | ResponseHeader | None) -> Version:
    if header is None or header.protocol_version is None:
        raise ValueError("message has no protocol version")
    return header.protocol_version.as_tuple()


# ---------------------------------------------------------------------------------------------
# Decoding


def _first(parent: Item, tag: int) -> Item | None:
    """The child with ``tag``: the first child in well-formed messages, else a search."""
    children = parent.value
    if children and children[0].tag == tag:
        return children[0]  # type: ignore[no-any-return]
    return parent.find(tag)


def _peek_version(message: Item, header_tag: int) -> Version:
    """The protocol version announced in the raw header (needed to pick field shapes)."""
    header = _first(message, header_tag) if message.type == STRUCTURE else None
    if header is None or header.type != STRUCTURE:
        raise DecodeError(f"message has no {tag_name(header_tag)}", ResultReason.INVALID_MESSAGE)
    pv = _first(header, Tag.PROTOCOL_VERSION)
    if pv is None or pv.type != STRUCTURE:
        raise DecodeError("message header has no ProtocolVersion", ResultReason.INVALID_MESSAGE)
    major = _first(pv, Tag.PROTOCOL_VERSION_MAJOR)
    minor = pv.find(Tag.PROTOCOL_VERSION_MINOR)
    if major is None or minor is None or major.type != INTEGER or minor.type != INTEGER:
        raise DecodeError("malformed ProtocolVersion", ResultReason.INVALID_MESSAGE)
    return (major.value, minor.value)


def _check_batch(message: Item, limits: Limits) -> None:
    if len(message.value) <= limits.max_batch_count:
        return
    count = sum(1 for child in message.value if child.tag == Tag.BATCH_ITEM)
    if count > limits.max_batch_count:
        raise DecodeError(
            f"{count} batch items exceed the limit of {limits.max_batch_count}",
            ResultReason.INVALID_MESSAGE,
        )


def _check_count(header: RequestHeader | ResponseHeader, items: list[Any]) -> None:
    if header.batch_count != len(items):
        raise DecodeError(
            f"BatchCount is {header.batch_count} but the message has {len(items)} batch items",
            ResultReason.INVALID_MESSAGE,
        )


def _type_payloads(items: list[Any], registry: dict[Operation, type], version: Version) -> None:
    for batch_item in items:
        raw = batch_item.payload
        cls = registry.get(batch_item.operation)
        if cls is None or raw is None:
            continue
        try:
            batch_item.payload = from_item(cls, raw, version)
        except DecodeError as exc:
            batch_item.payload_error = exc


def request_from_item(message: Item, limits: Limits = DEFAULT_LIMITS) -> RequestMessage:
    """Type a decoded ``RequestMessage`` tree (any encoding)."""
    if message.tag != Tag.REQUEST_MESSAGE:
        raise DecodeError("not a RequestMessage", ResultReason.INVALID_MESSAGE)
    version = _peek_version(message, Tag.REQUEST_HEADER)
    _check_batch(message, limits)
    msg = from_item(RequestMessage, message, version)
    assert msg.header is not None
    _check_count(msg.header, msg.batch_items)
    _type_payloads(msg.batch_items, REQUEST_PAYLOADS, version)
    return msg


def response_from_item(message: Item, limits: Limits = DEFAULT_LIMITS) -> ResponseMessage:
    """Type a decoded ``ResponseMessage`` tree (any encoding)."""
    if message.tag != Tag.RESPONSE_MESSAGE:
        raise DecodeError("not a ResponseMessage", ResultReason.INVALID_MESSAGE)
    version = _peek_version(message, Tag.RESPONSE_HEADER)
    _check_batch(message, limits)
    msg = from_item(ResponseMessage, message, version)
    assert msg.header is not None
    _check_count(msg.header, msg.batch_items)
    _type_payloads(msg.batch_items, RESPONSE_PAYLOADS, version)
    return msg


def decode_request(data: bytes, limits: Limits = DEFAULT_LIMITS) -> RequestMessage:
    """TTLV bytes → typed request. Raises :class:`DecodeError` only."""
    return request_from_item(ttlv.decode(data, limits), limits)


def decode_response(data: bytes, limits: Limits = DEFAULT_LIMITS) -> ResponseMessage:
    """TTLV bytes → typed response. Raises :class:`DecodeError` only."""
    return response_from_item(ttlv.decode(data, limits), limits)


# ---------------------------------------------------------------------------------------------
# Encoding (in the header's protocol version; a missing BatchCount is filled in)


def _fill_count(msg: RequestMessage | ResponseMessage) -> None:
    if msg.header is not None and msg.header.batch_count is None:
        msg.header.batch_count = len(msg.batch_items)


def request_to_item(msg: RequestMessage) -> Item:
    _fill_count(msg)
    return to_item(msg, Tag.REQUEST_MESSAGE, msg.version)


def response_to_item(msg: ResponseMessage) -> Item:
    _fill_count(msg)
    return to_item(msg, Tag.RESPONSE_MESSAGE, msg.version)


def encode_request(msg: RequestMessage) -> bytes:
    return ttlv.encode(request_to_item(msg))


def encode_response(msg: ResponseMessage) -> bytes:
    return ttlv.encode(response_to_item(msg))
