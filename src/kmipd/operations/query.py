"""Query: what this server supports, truthfully (KMIP 1.4 §4.25)."""

from __future__ import annotations

from kmipd.protocol import tables
from kmipd.protocol._generated import ObjectType, Operation, QueryFunction, Tag
from kmipd.protocol.payloads import QueryRequest, QueryResponse
from kmipd.protocol.ttlv import STRUCTURE, Item
from kmipd.service.context import RequestContext

OPERATION = Operation.QUERY

_OPERATIONS = tables.enum_def("Operation")


async def handle(ctx: RequestContext, request: QueryRequest) -> QueryResponse:
    functions = set(request.query_functions)
    response = QueryResponse()
    if QueryFunction.QUERY_OPERATIONS in functions:
        # Only what the request's version knows (Interop, Log... are 2.x operations).
        response.operations = [
            Operation(op)
            for op in ctx.server.operations
            if _OPERATIONS is not None and _OPERATIONS.variant(op, ctx.version) is not None
        ]
    if QueryFunction.QUERY_OBJECTS in functions:
        response.object_types = [ObjectType(t) for t in ctx.server.object_types]
        if ctx.version < (2, 0):  # 1.x Templates can be registered (gone in 2.0)
            response.object_types.append(ObjectType.TEMPLATE)
    if QueryFunction.QUERY_SERVER_INFORMATION in functions:
        response.vendor_identification = ctx.server.vendor_identification
        response.server_information = Item(Tag.SERVER_INFORMATION, STRUCTURE, [])
    return response
