"""Sign: a signature with an RSA or EC private key (KMIP 1.4 §4.31, 2.1 §6.1.52)."""

from __future__ import annotations

from kmipd.crypto import asymmetric
from kmipd.operations._crypto import (
    SIGN,
    consume,
    crypto_errors,
    refuse_streaming,
    request_params,
    require_version,
    usable_key,
)
from kmipd.protocol._generated import Operation, ResultReason
from kmipd.protocol.crypto_payloads import SignRequest, SignResponse
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError

OPERATION = Operation.SIGN


async def handle(ctx: RequestContext, request: SignRequest) -> SignResponse:
    require_version(ctx, OPERATION)
    refuse_streaming(request.correlation_value, request.init_indicator, request.final_indicator)
    message = request.data if request.data is not None else request.digested_data
    if message is None:
        raise KmipError(ResultReason.INVALID_MESSAGE, "give Data or Digested Data to sign")
    key = await usable_key(ctx, request.unique_identifier, SIGN, len(message))
    params = request_params(request.cryptographic_parameters, key)
    with crypto_errors():
        private = key.private_key()
        signature = asymmetric.sign(private, params, request.data, request.digested_data)
    await consume(ctx, key, len(message))
    return SignResponse(unique_identifier=key.obj.uid, signature_data=signature)
