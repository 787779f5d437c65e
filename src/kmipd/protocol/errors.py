"""The protocol's error types.

Every malformed input raises :class:`DecodeError`, whatever the encoding, and nothing else.
It carries the KMIP Result Reason a server should report. Its message names offsets, tags and
limits, never the bytes of the input: the input may hold key material.
"""

from __future__ import annotations

from kmipd.protocol._generated import ResultReason


class ProtocolError(Exception):
    """Base of the protocol package's errors; ``reason`` is a KMIP Result Reason hint."""

    def __init__(self, message: str, reason: ResultReason = ResultReason.INVALID_MESSAGE) -> None:
        super().__init__(message)
        self.reason = reason


class DecodeError(ProtocolError):
    """The input is not a well-formed message in the encoding it claims."""


class EncodeError(ProtocolError, ValueError):
    """A tree or message cannot be encoded (a value out of range, a wrong Python type)."""

    def __init__(self, message: str, reason: ResultReason = ResultReason.GENERAL_FAILURE) -> None:
        super().__init__(message, reason)
