"""When each allowed certificate was last used: "last seen" of the certificate list.

Recorded when a KMIP connection authenticates, at most once per certificate every
``resolution`` seconds, so a busy client does not cost a database write per connection.
A failed write is logged and never refuses the connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kmipd.store.database import log_failure
from kmipd.store.store import Store

log = logging.getLogger(__name__)

SEEN_RESOLUTION = 60


class CertificateSightings:
    def __init__(
        self,
        store: Store,
        resolution: int = SEEN_RESOLUTION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._resolution = resolution
        self._clock = clock
        self._written: dict[str, int] = {}

    async def seen(self, fingerprint: str) -> None:
        if not fingerprint:
            return
        now = int(self._clock())
        last = self._written.get(fingerprint)
        if last is not None and now - last < self._resolution:
            return
        self._written[fingerprint] = now
        try:
            await self._store.certificate_seen(fingerprint, now)
        except Exception:
            log_failure(log, "could not record that certificate %s was seen", fingerprint)
