"""Activate: Pre-Active to Active, now (KMIP 1.4 §4.19)."""

from __future__ import annotations

from kmipd.model.lifecycle import Event, next_state
from kmipd.operations._common import update
from kmipd.protocol._generated import Operation
from kmipd.protocol.payloads import UidRequest, UidResponse
from kmipd.protocol.ttlv import DATE_TIME
from kmipd.service.context import RequestContext
from kmipd.service.repository import ManagedObject

OPERATION = Operation.ACTIVATE


async def handle(ctx: RequestContext, request: UidRequest) -> UidResponse:
    def activate(obj: ManagedObject) -> None:
        obj.state = next_state(obj.state, Event.ACTIVATE)
        obj.attributes.set("Activation Date", ctx.now, DATE_TIME)

    # vCenter may be tagging the same key on another connection meanwhile.
    obj, _ = await update(ctx, request.unique_identifier, activate)
    return UidResponse(unique_identifier=obj.uid)
