"""Multi-part (streaming) operations in progress, between a request with Init Indicator and
the one with Final Indicator (KMIP 1.4 §4.29, 2.1 §6.1.18: the server answers a
Correlation Value that the client sends back with every further part).

Kept in this process's memory only: the cipher state cannot be stored, and it holds the
key. A continuation that reaches another node of a cluster, or comes after a restart or
after :data:`IDLE_SECONDS`, is refused with an unknown Correlation Value. At most
:data:`MAX_OPEN` streams are open per instance; the one idle longest makes room.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from kmipd.protocol._generated import Operation

from .symmetric import CipherStream

IDLE_SECONDS = 300
MAX_OPEN = 256


@dataclass(slots=True)
class OpenStream:
    operation: Operation
    uid: str
    cipher: CipherStream = field(repr=False)
    last_used: int


class StreamTable:
    """Open streams by (instance, Correlation Value)."""

    def __init__(self) -> None:
        self._open: dict[str, OrderedDict[bytes, OpenStream]] = {}

    def open(self, instance: str, stream: OpenStream) -> bytes:
        streams = self._open.setdefault(instance, OrderedDict())
        self._expire(streams, stream.last_used)
        while len(streams) >= MAX_OPEN:
            streams.popitem(last=False)
        correlation = secrets.token_bytes(16)
        streams[correlation] = stream
        return correlation

    def take(self, instance: str, correlation: bytes, now: int) -> OpenStream | None:
        """The stream, removed from the table (put it back with :meth:`keep`)."""
        streams = self._open.get(instance)
        if streams is None:
            return None
        self._expire(streams, now)
        return streams.pop(correlation, None)

    def keep(self, instance: str, correlation: bytes, stream: OpenStream) -> None:
        self._open.setdefault(instance, OrderedDict())[correlation] = stream

    @staticmethod
    def _expire(streams: OrderedDict[bytes, OpenStream], now: int) -> None:
        for correlation in [c for c, s in streams.items() if now - s.last_used > IDLE_SECONDS]:
            del streams[correlation]


STREAMS = StreamTable()
"""This process's open streams."""
