"""Activate: Pre-Active to Active, now (KMIP 1.4 §4.19)."""

from __future__ import annotations

from kmipd.model.lifecycle import Event, next_state
from kmipd.operations._common import load, touch
from kmipd.protocol._generated import Operation
from kmipd.protocol.payloads import UidRequest, UidResponse
from kmipd.protocol.ttlv import DATE_TIME
from kmipd.service.context import RequestContext

OPERATION = Operation.ACTIVATE


async def handle(ctx: RequestContext, request: UidRequest) -> UidResponse:
    obj = await load(ctx, request.unique_identifier)
    obj.state = next_state(obj.state, Event.ACTIVATE)
    obj.attributes.set("Activation Date", ctx.now, DATE_TIME)
    touch(obj, ctx.now)
    await ctx.objects.save(obj, ctx.now)
    return UidResponse(unique_identifier=obj.uid)
