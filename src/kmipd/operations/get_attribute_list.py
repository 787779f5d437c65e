"""GetAttributeList: the names of the attributes an object has (KMIP 1.4 §4.13)."""

from __future__ import annotations

from kmipd.operations._common import attribute_names, load
from kmipd.protocol._generated import Operation
from kmipd.protocol.payloads import GetAttributeListRequest, GetAttributeListResponse
from kmipd.service.context import RequestContext

OPERATION = Operation.GET_ATTRIBUTE_LIST


async def handle(ctx: RequestContext, request: GetAttributeListRequest) -> GetAttributeListResponse:
    obj = await load(ctx, request.unique_identifier)
    return GetAttributeListResponse(
        unique_identifier=obj.uid, attribute_names=attribute_names(obj, ctx.version)
    )
