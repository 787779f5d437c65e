"""Encrypt: data under a symmetric key or an RSA public key (KMIP 1.4 §4.29, 2.1 §6.1.18);
with a symmetric key also in parts (Init Indicator, Correlation Value, Final Indicator)."""

from __future__ import annotations

from kmipd.crypto import asymmetric, symmetric
from kmipd.operations._crypto import (
    ENCRYPT,
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
from kmipd.protocol.crypto_payloads import EncryptRequest, EncryptResponse
from kmipd.service.context import RequestContext

OPERATION = Operation.ENCRYPT


async def handle(ctx: RequestContext, request: EncryptRequest) -> EncryptResponse:
    require_version(ctx, OPERATION)
    if is_multipart(request.correlation_value, request.init_indicator, request.final_indicator):
        part = await cipher_part(ctx, request, ENCRYPT)
        return EncryptResponse(
            unique_identifier=part.uid,
            data=part.output.data,
            iv_counter_nonce=part.output.iv,
            correlation_value=part.correlation_value,
            authenticated_encryption_tag=part.output.tag,
        )
    data = require_data(request.data)
    key = await usable_key(ctx, request.unique_identifier, ENCRYPT, len(data))
    params = request_params(request.cryptographic_parameters, key)
    with crypto_errors():
        if key.obj.object_type == ObjectType.PUBLIC_KEY:
            public = key.public_key()
            sealed = symmetric.Sealed(asymmetric.encrypt(public, params, data))
        else:
            sealed = symmetric.encrypt(
                key.algorithm or 0,
                key.secret(),
                params,
                data,
                request.iv_counter_nonce,
                request.authenticated_encryption_additional_data,
            )
    await consume(ctx, key, len(data))
    return EncryptResponse(
        unique_identifier=key.obj.uid,
        data=sealed.data,
        iv_counter_nonce=sealed.iv,
        authenticated_encryption_tag=sealed.tag,
    )
