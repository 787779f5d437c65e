"""Hash: a digest of the request's data; no key (KMIP 1.4 §4.36, 2.1 §6.1.24)."""

from __future__ import annotations

from kmipd.crypto import digest
from kmipd.crypto.params import parse
from kmipd.operations._crypto import crypto_errors, refuse_streaming, require_data, require_version
from kmipd.protocol._generated import Operation
from kmipd.protocol.crypto_payloads import HashRequest, HashResponse
from kmipd.service.context import RequestContext

OPERATION = Operation.HASH


async def handle(ctx: RequestContext, request: HashRequest) -> HashResponse:
    require_version(ctx, OPERATION)
    refuse_streaming(request.correlation_value, request.init_indicator, request.final_indicator)
    data = require_data(request.data)
    with crypto_errors():
        return HashResponse(data=digest.digest(parse(request.cryptographic_parameters), data))
