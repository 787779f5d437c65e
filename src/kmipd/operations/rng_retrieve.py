"""RNG Retrieve: random bytes from the operating system's CSPRNG (KMIP 1.4 §4.35)."""

from __future__ import annotations

import secrets

from kmipd.operations._crypto import require_version
from kmipd.protocol._generated import Operation, ResultReason
from kmipd.protocol.crypto_payloads import RngRetrieveRequest, RngRetrieveResponse
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError

OPERATION = Operation.RNG_RETRIEVE

# One answer must fit a message comfortably; a client wanting more asks again.
MAX_DATA_LENGTH = 1024 * 1024


async def handle(ctx: RequestContext, request: RngRetrieveRequest) -> RngRetrieveResponse:
    require_version(ctx, OPERATION)
    length = request.data_length
    if length is None or not 0 < length <= MAX_DATA_LENGTH:
        raise KmipError(
            ResultReason.INVALID_FIELD,
            f"Data Length must be between 1 and {MAX_DATA_LENGTH} bytes",
        )
    return RngRetrieveResponse(data=secrets.token_bytes(length))
