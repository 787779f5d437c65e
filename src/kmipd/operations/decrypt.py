"""Decrypt: data under a symmetric key or an RSA private key (KMIP 1.4 §4.30, 2.1 §6.1.13);
with a symmetric key also in parts (Init Indicator, Correlation Value, Final Indicator)."""

from __future__ import annotations

from kmipd.crypto import asymmetric, symmetric
from kmipd.operations._crypto import (
    DECRYPT,
    cipher_part,
    consume,
    crypto_errors,
    is_multipart,
    request_params,
    require_data,
    require_version,
    usable_key,
)
from kmipd.protocol._generated import ObjectType, Operation
from kmipd.protocol.crypto_payloads import DecryptRequest, DecryptResponse
from kmipd.service.context import RequestContext

OPERATION = Operation.DECRYPT


async def handle(ctx: RequestContext, request: DecryptRequest) -> DecryptResponse:
    require_version(ctx, OPERATION)
    if is_multipart(request.correlation_value, request.init_indicator, request.final_indicator):
        part = await cipher_part(ctx, request, DECRYPT)
        return DecryptResponse(
            unique_identifier=part.uid,
            data=part.output.data,
            correlation_value=part.correlation_value,
        )
    data = require_data(request.data)
    key = await usable_key(ctx, request.unique_identifier, DECRYPT, len(data))
    params = request_params(request.cryptographic_parameters, key)
    with crypto_errors():
        if key.obj.object_type == ObjectType.PRIVATE_KEY:
            private = key.private_key()
            plain = asymmetric.decrypt(private, params, data)
        else:
            plain = symmetric.decrypt(
                key.algorithm or 0,
                key.secret(),
                params,
                data,
                request.iv_counter_nonce,
                request.authenticated_encryption_additional_data,
                request.authenticated_encryption_tag,
            )
    await consume(ctx, key, len(data))
    return DecryptResponse(unique_identifier=key.obj.uid, data=plain)
