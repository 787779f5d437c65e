"""Interop: Begin/End/Reset markers of an interoperability test (KMIP 2.1 §6.1.28).

kmipd keeps no per-test state, so each function simply succeeds.
"""

from __future__ import annotations

from kmipd.protocol._generated import Operation
from kmipd.protocol.payloads import EmptyPayload, InteropRequest
from kmipd.service.context import RequestContext

OPERATION = Operation.INTEROP


async def handle(ctx: RequestContext, request: InteropRequest) -> EmptyPayload:
    ctx.notes["interop"] = request.interop_identifier
    return EmptyPayload()
