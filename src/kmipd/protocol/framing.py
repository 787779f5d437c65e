"""Incremental framing of TTLV messages over a byte stream (sans-I/O).

The caller feeds whatever bytes arrived with :meth:`FrameReader.receive_data` and takes
whole messages with :meth:`FrameReader.next_frame`. A KMIP message is one TTLV Structure,
so its 8-byte header announces its length; a length over the limit is rejected as soon as
the header is complete, before anything more is buffered.
"""

from __future__ import annotations

import struct

from kmipd.protocol.errors import DecodeError
from kmipd.protocol.limits import DEFAULT_LIMITS, Limits
from kmipd.protocol.ttlv import STRUCTURE

HEADER_SIZE = 8
_HEADER = struct.Struct(">II")


def frame_length(header: bytes, limits: Limits = DEFAULT_LIMITS) -> int:
    """Total size of the frame announced by an 8-byte header, checked against the limits."""
    tag_type, length = _HEADER.unpack_from(header, 0)
    if tag_type & 0xFF != STRUCTURE or tag_type >> 24 != 0x42:
        raise DecodeError("a KMIP message must be a TTLV structure with a KMIP tag")
    total = HEADER_SIZE + length
    if total > limits.max_frame_bytes:
        raise DecodeError(
            f"announced message length {length} exceeds the limit of {limits.max_frame_bytes} bytes"
        )
    if length & 7:
        raise DecodeError("announced message length is not a multiple of 8")
    return total


class FrameReader:
    """Splits a byte stream into whole TTLV messages. After an error it stays broken."""

    __slots__ = ("_buffer", "_error", "_limits", "_need")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._need = 0  # total size of the frame being read, once its header is known
        self._error: DecodeError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._buffer += data
        if not self._need and len(self._buffer) >= HEADER_SIZE:
            self._read_header()

    def _read_header(self) -> None:
        try:
            self._need = frame_length(bytes(self._buffer[:HEADER_SIZE]), self._limits)
        except DecodeError as exc:
            self._error = exc
            self._buffer = bytearray()
            raise

    def next_frame(self) -> bytes | None:
        """The next whole message, or None when more bytes are needed."""
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        if not self._need:
            if len(buffer) < HEADER_SIZE:
                return None
            self._read_header()
        need = self._need
        if len(buffer) < need:
            return None
        frame = bytes(buffer[:need])
        del buffer[:need]
        self._need = 0
        return frame
