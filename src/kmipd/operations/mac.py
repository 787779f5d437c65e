"""MAC: an HMAC under a symmetric key (KMIP 1.4 §4.33, 2.1 §6.1.32)."""

from __future__ import annotations

from kmipd.crypto import digest
from kmipd.operations._crypto import (
    MAC_GENERATE,
    consume,
    crypto_errors,
    refuse_streaming,
    request_params,
    require_data,
    require_version,
    usable_key,
)
from kmipd.protocol._generated import Operation
from kmipd.protocol.crypto_payloads import MacRequest, MacResponse
from kmipd.service.context import RequestContext

OPERATION = Operation.MAC


async def handle(ctx: RequestContext, request: MacRequest) -> MacResponse:
    require_version(ctx, OPERATION)
    refuse_streaming(request.correlation_value, request.init_indicator, request.final_indicator)
    data = require_data(request.data)
    key = await usable_key(ctx, request.unique_identifier, MAC_GENERATE, len(data))
    params = request_params(request.cryptographic_parameters, key)
    with crypto_errors():
        algorithm = digest.hmac_algorithm(key.algorithm, key.params, params)
        mac_data = digest.mac(algorithm, key.secret(), data)
    await consume(ctx, key, len(data))
    return MacResponse(unique_identifier=key.obj.uid, mac_data=mac_data)
