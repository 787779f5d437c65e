"""The KMIP engine: one request message in, one response message out.

It answers in the protocol version of the request, runs the batch items in order through the
operation registry, honours the Batch Error Continuation Option and the ID Placeholder, turns
every failure into a Result Reason the request's version knows, and enforces the request's
Maximum Response Size. It never lets an exception or an internal detail reach the client.

It works on TTLV trees, so the same engine serves TTLV, and (later) XML and JSON over HTTPS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kmipd.audit.log import AuditUnavailable
from kmipd.operations import REGISTRY
from kmipd.protocol import messages, ttlv
from kmipd.protocol._generated import (
    BatchErrorContinuationOption,
    Operation,
    ResultReason,
    ResultStatus,
    Tag,
)
from kmipd.protocol.errors import DecodeError, EncodeError
from kmipd.protocol.limits import Limits
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.tables import Version
from kmipd.protocol.ttlv import Item
from kmipd.service.context import RequestContext, ServerInfo
from kmipd.service.errors import KmipError, reason_for_version
from kmipd.service.identity import ClientIdentity
from kmipd.service.repository import JournalingRepository, ObjectRepository
from kmipd.store.database import StoreUnavailable

log = logging.getLogger(__name__)

GENERIC_FAILURE = "the server could not complete the operation"
# A node that lost its database: vCenter then tries the cluster's other servers.
STORE_UNAVAILABLE = "the key store is unavailable; try again, or another server of the cluster"

# Called once per batch with the items that ran and their results (after Batch Undo settled
# them): the audit trail. It returns once the records are durable, or raises
# AuditUnavailable, and then the batch is undone and fails.
AuditHook = Callable[
    [ClientIdentity, list[messages.RequestBatchItem], list[messages.ResponseBatchItem]],
    Awaitable[None],
]
AUDIT_UNAVAILABLE = "the audit trail cannot be written, so the request was not carried out"


def _ttlv_size(tree: Item) -> int:
    return len(ttlv.encode(tree))


class KmipEngine:
    def __init__(
        self,
        objects: ObjectRepository,
        server: ServerInfo,
        limits: Limits,
        clock: Callable[[], float] = time.time,
        audit: AuditHook | None = None,
    ) -> None:
        self._audit = audit
        self._objects = objects
        self._server = server
        self._limits = limits
        self._clock = clock
        self._supported = frozenset(server.versions)

    async def handle_ttlv(self, frame: bytes, client: ClientIdentity) -> bytes:
        """A TTLV request frame in, a TTLV response out."""
        try:
            tree = ttlv.decode(frame, self._limits)
        except DecodeError as exc:
            return ttlv.encode(self._failure_message(None, exc.reason, str(exc)))
        response = await self.process(tree, client, measure=_ttlv_size)
        return ttlv.encode(response)

    def failure_response(self, reason: int, message: str, requested: Version | None = None) -> Item:
        """A whole-message failure outside :meth:`process`, e.g. for a KMIP over HTTPS body
        that is not TTLV, XML or JSON at all: one failed batch item, in ``requested`` (or
        the nearest supported) protocol version."""
        return self._failure_message(requested, reason, message)

    async def process(
        self, tree: Item, client: ClientIdentity, measure: Callable[[Item], int] = _ttlv_size
    ) -> Item:
        requested = _peek_version(tree)
        try:
            request = messages.request_from_item(tree, self._limits)
        except DecodeError as exc:
            return self._failure_message(requested, exc.reason, str(exc))
        version = request.version
        if version not in self._supported:
            return self._failure_message(
                version,
                ResultReason.UNSUPPORTED_PROTOCOL_VERSION,
                f"protocol version {version[0]}.{version[1]} is not supported",
            )
        assert request.header is not None
        now = int(self._clock())
        items = await self._run_batch(request, client, version, now)
        response = messages.ResponseMessage(
            header=messages.ResponseHeader(
                protocol_version=ProtocolVersion.of(version),
                time_stamp=now,
                client_correlation_value=request.header.client_correlation_value,
                batch_count=len(items),
            ),
            batch_items=items,
        )
        tree_out = self._encode(response, version)
        limit = request.header.maximum_response_size
        if limit is not None and measure(tree_out) > limit:
            for item in items:
                item.result_status = ResultStatus.OPERATION_FAILED
                item.result_reason = ResultReason.RESPONSE_TOO_LARGE
                item.result_message = (
                    f"the response is larger than the Maximum Response Size of {limit} bytes"
                )
                item.payload = None
            tree_out = self._encode(response, version)
        return tree_out

    async def _run_batch(
        self,
        request: messages.RequestMessage,
        client: ClientIdentity,
        version: Version,
        now: int,
    ) -> list[messages.ResponseBatchItem]:
        assert request.header is not None
        option = request.header.batch_error_continuation_option
        undo = option == BatchErrorContinuationOption.UNDO
        stop_on_error = option != BatchErrorContinuationOption.CONTINUE
        # Every batch is journalled, not only Undo batches: if its audit records cannot be
        # written, what it changed is undone and it fails.
        # With an audit trail, a batch's writes need not each wait for the disk: the
        # batch's audit commit does, before the answer (durable for any operation that
        # changes something), and puts them on disk with it.
        objects = JournalingRepository(self._objects, durable=self._audit is None)
        ctx = RequestContext(client, version, now, objects, self._server)
        results: list[messages.ResponseBatchItem] = []
        for item in request.batch_items:
            result = await self._run_item(ctx, item)
            results.append(result)
            if stop_on_error and result.result_status != ResultStatus.SUCCESS:
                break
        if undo and results and results[-1].result_status != ResultStatus.SUCCESS:
            if await objects.undo():
                for result in results[:-1]:
                    result.result_status = ResultStatus.OPERATION_UNDONE
            else:
                log.warning("a batch could not be undone completely: concurrent changes")
        if self._audit is not None:
            try:
                await self._audit(client, request.batch_items[: len(results)], results)
            except AuditUnavailable:
                if not await objects.undo():
                    log.error("a batch whose audit records failed could not be undone")
                return [
                    _failed(item, ResultReason.GENERAL_FAILURE, AUDIT_UNAVAILABLE)
                    for item in request.batch_items
                ]
        return results

    async def _run_item(
        self, ctx: RequestContext, item: messages.RequestBatchItem
    ) -> messages.ResponseBatchItem:
        operation = item.operation
        handler = REGISTRY.get(operation)  # type: ignore[arg-type]
        if item.payload_error is not None:
            reason = item.payload_error.reason
            return _failed(
                item,
                reason_for_version(reason, ctx.version),
                f"the request payload is malformed: {item.payload_error}",
            )
        if handler is None or item.payload_is_raw:
            return _failed(
                item,
                ResultReason.OPERATION_NOT_SUPPORTED,
                f"operation {_operation_name(operation)} is not supported",
            )
        try:
            payload = await handler(ctx, item.payload)
        except KmipError as exc:
            return _failed(item, reason_for_version(exc.reason, ctx.version), exc.message)
        except StoreUnavailable as exc:
            log.warning("operation %s failed: %s", _operation_name(operation), exc)
            return _failed(item, ResultReason.GENERAL_FAILURE, STORE_UNAVAILABLE)
        except Exception:
            log.exception("operation %s failed", _operation_name(operation))
            return _failed(item, ResultReason.GENERAL_FAILURE, GENERIC_FAILURE)
        uid = getattr(payload, "unique_identifier", None)
        if uid is None:
            # Locate: the ID Placeholder becomes the (first) object found.
            found = getattr(payload, "unique_identifiers", None)
            uid = found[0] if found else None
        if isinstance(uid, str):
            ctx.id_placeholder = uid
        return messages.ResponseBatchItem(
            operation=operation,
            unique_batch_item_id=item.unique_batch_item_id,
            result_status=ResultStatus.SUCCESS,
            payload=payload,
        )

    def _encode(self, response: messages.ResponseMessage, version: Version) -> Item:
        try:
            return messages.response_to_item(response)
        except EncodeError:
            log.exception("could not encode a response")
            for item in response.batch_items:
                if item.result_status == ResultStatus.SUCCESS:
                    item.result_status = ResultStatus.OPERATION_FAILED
                    item.result_reason = ResultReason.GENERAL_FAILURE
                    item.result_message = GENERIC_FAILURE
                    item.payload = None
            return messages.response_to_item(response)

    def _failure_message(self, requested: Version | None, reason: int, message: str) -> Item:
        """A whole-message failure: one batch item, no Operation (KMIP's Invalid Message)."""
        version = self._answer_version(requested)
        response = messages.ResponseMessage(
            header=messages.ResponseHeader(
                protocol_version=ProtocolVersion.of(version),
                time_stamp=int(self._clock()),
                batch_count=1,
            ),
            batch_items=[
                messages.ResponseBatchItem(
                    result_status=ResultStatus.OPERATION_FAILED,
                    result_reason=reason_for_version(reason, version),
                    result_message=message,
                )
            ],
        )
        return messages.response_to_item(response)

    def _answer_version(self, requested: Version | None) -> Version:
        if requested in self._supported:
            assert requested is not None
            return requested
        if requested is not None:
            same_major = [v for v in self._supported if v[0] == requested[0] and v <= requested]
            if same_major:
                return max(same_major)
        return min(self._supported)


def _failed(
    item: messages.RequestBatchItem, reason: int, message: str
) -> messages.ResponseBatchItem:
    return messages.ResponseBatchItem(
        operation=item.operation,
        unique_batch_item_id=item.unique_batch_item_id,
        result_status=ResultStatus.OPERATION_FAILED,
        result_reason=reason,
        result_message=message,
    )


def _operation_name(operation: Any) -> str:
    try:
        return Operation(operation).name.title().replace("_", "")
    except ValueError:
        return f"0x{operation:08X}" if isinstance(operation, int) else "(none)"


def _peek_version(tree: Item) -> Version | None:
    try:
        header = tree.find(Tag.REQUEST_HEADER) if tree.type == ttlv.STRUCTURE else None
        pv = header.find(Tag.PROTOCOL_VERSION) if header is not None else None
        major = pv.find(Tag.PROTOCOL_VERSION_MAJOR) if pv is not None else None
        minor = pv.find(Tag.PROTOCOL_VERSION_MINOR) if pv is not None else None
    except (AttributeError, TypeError):
        return None
    if major is None or minor is None:
        return None
    if not isinstance(major.value, int) or not isinstance(minor.value, int):
        return None
    return (major.value, minor.value)
