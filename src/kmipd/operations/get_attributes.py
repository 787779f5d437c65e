"""GetAttributes: named attributes, or all; a name that is not set is simply left out.

vCenter probes x-Product, x-Vendor, ... before it adds them, and expects Success with no
attribute for a name not set (KMIP 1.4 §4.12).
"""

from __future__ import annotations

from kmipd.operations._common import all_attributes, load
from kmipd.protocol._generated import Operation
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.payloads import GetAttributesRequest, GetAttributesResponse
from kmipd.service.context import RequestContext

OPERATION = Operation.GET_ATTRIBUTES


async def handle(ctx: RequestContext, request: GetAttributesRequest) -> GetAttributesResponse:
    obj = await load(ctx, request.unique_identifier)
    attributes = all_attributes(obj, ctx.version)
    if request.attribute_names:
        # In the order the client asked for them (the OASIS test cases expect that order).
        by_name: dict[str, list[Attribute]] = {}
        for attribute in attributes:
            by_name.setdefault(attribute.name, []).append(attribute)
        attributes = [
            a for name in dict.fromkeys(request.attribute_names) for a in by_name.get(name, [])
        ]
    return GetAttributesResponse(unique_identifier=obj.uid, attributes=attributes)
