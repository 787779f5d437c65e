"""DiscoverVersions: the versions both sides speak, newest first (KMIP 1.4 §4.26)."""

from __future__ import annotations

from kmipd.protocol._generated import Operation
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.payloads import DiscoverVersionsRequest, DiscoverVersionsResponse
from kmipd.service.context import RequestContext

OPERATION = Operation.DISCOVER_VERSIONS


async def handle(ctx: RequestContext, request: DiscoverVersionsRequest) -> DiscoverVersionsResponse:
    ours = ctx.server.versions
    if request.protocol_versions:
        # The client's list, in its order, less what we do not speak.
        wanted = [v.as_tuple() for v in request.protocol_versions]
        ours = tuple(v for v in wanted if v in ctx.server.versions)
    return DiscoverVersionsResponse(protocol_versions=[ProtocolVersion.of(v) for v in ours])
