"""Signature Verify: with an RSA or EC public key (KMIP 1.4 §4.32, 2.1 §6.1.53).

A signature that does not verify is a successful answer with Validity Indicator Invalid.
"""

from __future__ import annotations

from kmipd.crypto import asymmetric
from kmipd.operations._crypto import (
    VERIFY,
    consume,
    crypto_errors,
    refuse_streaming,
    request_params,
    require_data,
    require_version,
    usable_key,
)
from kmipd.protocol._generated import Operation, ResultReason, ValidityIndicator
from kmipd.protocol.crypto_payloads import SignatureVerifyRequest, SignatureVerifyResponse
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError

OPERATION = Operation.SIGNATURE_VERIFY


async def handle(ctx: RequestContext, request: SignatureVerifyRequest) -> SignatureVerifyResponse:
    require_version(ctx, OPERATION)
    refuse_streaming(request.correlation_value, request.init_indicator, request.final_indicator)
    signature = require_data(request.signature_data, "Signature Data")
    message = request.data if request.data is not None else request.digested_data
    if message is None:
        raise KmipError(ResultReason.INVALID_MESSAGE, "give the Data or Digested Data signed")
    key = await usable_key(ctx, request.unique_identifier, VERIFY, len(message))
    params = request_params(request.cryptographic_parameters, key)
    with crypto_errors():
        public = key.public_key()
        valid = asymmetric.verify(public, params, request.data, request.digested_data, signature)
    await consume(ctx, key, len(message))
    return SignatureVerifyResponse(
        unique_identifier=key.obj.uid,
        validity_indicator=ValidityIndicator.VALID if valid else ValidityIndicator.INVALID,
    )
