"""Query: what this server supports, truthfully (KMIP 1.4 §4.25)."""

from __future__ import annotations

from kmipd.protocol._generated import ObjectType, Operation, QueryFunction
from kmipd.protocol.payloads import QueryRequest, QueryResponse
from kmipd.service.context import RequestContext

OPERATION = Operation.QUERY


async def handle(ctx: RequestContext, request: QueryRequest) -> QueryResponse:
    functions = set(request.query_functions)
    response = QueryResponse()
    if QueryFunction.QUERY_OPERATIONS in functions:
        response.operations = [Operation(op) for op in ctx.server.operations]
    if QueryFunction.QUERY_OBJECTS in functions:
        response.object_types = [ObjectType(t) for t in ctx.server.object_types]
    if QueryFunction.QUERY_SERVER_INFORMATION in functions:
        response.vendor_identification = ctx.server.vendor_identification
    return response
