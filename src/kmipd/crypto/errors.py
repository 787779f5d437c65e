"""The one error the crypto package raises."""

from __future__ import annotations

from kmipd.protocol._generated import ResultReason


class CryptoError(Exception):
    """A cryptographic request that cannot be served. ``message`` goes to the client: it
    names parameters and lengths, never key material or data."""

    def __init__(self, reason: ResultReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def bad_parameters(message: str) -> CryptoError:
    return CryptoError(ResultReason.BAD_CRYPTOGRAPHIC_PARAMETERS, message)


def unsupported(message: str) -> CryptoError:
    return CryptoError(ResultReason.UNSUPPORTED_CRYPTOGRAPHIC_PARAMETERS, message)


def failed(message: str) -> CryptoError:
    return CryptoError(ResultReason.CRYPTOGRAPHIC_FAILURE, message)
