"""Destroy: remove the key material, keep the metadata (KMIP 1.4 §4.21).

An Active object cannot be destroyed (Wrong Key Lifecycle State; Permission Denied in 1.x,
through the fallback table). The sealed body is dropped from the row, so the material is gone
from the database; the attributes stay, with a Destroy Date, so Get Attributes still answers.
"""

from __future__ import annotations

from kmipd.model.lifecycle import Event, next_state
from kmipd.operations._common import update
from kmipd.protocol._generated import Operation
from kmipd.protocol.payloads import UidRequest, UidResponse
from kmipd.protocol.ttlv import DATE_TIME
from kmipd.service.context import RequestContext
from kmipd.service.repository import ManagedObject

OPERATION = Operation.DESTROY


async def handle(ctx: RequestContext, request: UidRequest) -> UidResponse:
    def destroy(obj: ManagedObject) -> None:
        obj.state = next_state(obj.state, Event.DESTROY)
        obj.attributes.set("Destroy Date", ctx.now, DATE_TIME)

    # Another connection may be tagging or fetching the same key meanwhile.
    obj, _ = await update(ctx, request.unique_identifier, destroy, destroy_body=True)
    return UidResponse(unique_identifier=obj.uid)
