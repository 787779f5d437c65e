"""Check: would this object allow the given use? (KMIP 1.4 §4.10)

kmipd checks the Cryptographic Usage Mask (every requested bit must be allowed). It does not
count usage or grant leases: a Usage Limits Count or Lease Time in the request is answered
as it came, without a limit of its own.
"""

from __future__ import annotations

from kmipd.operations._common import load
from kmipd.protocol._generated import Operation, ResultReason
from kmipd.protocol.payloads import CheckRequest, CheckResponse
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError

OPERATION = Operation.CHECK


async def handle(ctx: RequestContext, request: CheckRequest) -> CheckResponse:
    obj = await load(ctx, request.unique_identifier)
    wanted = request.cryptographic_usage_mask
    if wanted is not None:
        allowed = obj.attributes.value("Cryptographic Usage Mask")
        if not isinstance(allowed, int) or wanted & ~allowed:
            raise KmipError(
                ResultReason.INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK,
                "the object's Cryptographic Usage Mask does not allow this use",
            )
    return CheckResponse(unique_identifier=obj.uid)
