"""MAC Verify: check an HMAC under a symmetric key (KMIP 1.4 §4.34, 2.1 §6.1.33).

A MAC that does not match is a successful answer with Validity Indicator Invalid.
"""

from __future__ import annotations

from kmipd.crypto import digest
from kmipd.operations._crypto import (
    MAC_VERIFY,
    consume,
    crypto_errors,
    refuse_streaming,
    request_params,
    require_data,
    require_version,
    usable_key,
)
from kmipd.protocol._generated import Operation, ValidityIndicator
from kmipd.protocol.crypto_payloads import MacVerifyRequest, MacVerifyResponse
from kmipd.service.context import RequestContext

OPERATION = Operation.MAC_VERIFY


async def handle(ctx: RequestContext, request: MacVerifyRequest) -> MacVerifyResponse:
    require_version(ctx, OPERATION)
    refuse_streaming(request.correlation_value, request.init_indicator, request.final_indicator)
    data = require_data(request.data)
    mac_data = require_data(request.mac_data, "MAC Data")
    key = await usable_key(ctx, request.unique_identifier, MAC_VERIFY, len(data))
    params = request_params(request.cryptographic_parameters, key)
    with crypto_errors():
        algorithm = digest.hmac_algorithm(key.algorithm, key.params, params)
        valid = digest.mac_matches(algorithm, key.secret(), data, mac_data)
    await consume(ctx, key, len(data))
    return MacVerifyResponse(
        unique_identifier=key.obj.uid,
        validity_indicator=ValidityIndicator.VALID if valid else ValidityIndicator.INVALID,
    )
