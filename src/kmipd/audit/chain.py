"""The audit trail's chain: each record carries a keyed hash of itself and of the record
before it, so a record modified, removed, inserted or moved is found by ``verify``.

The hash is HMAC-SHA256 under a key derived from the keyring master key (the same on every
node of a cluster), not a bare SHA-256: someone who can write to the database but does not
have the master key cannot recompute the chain after changing it. The chain's head (the last
hash and the number of records) is kept in one row with its own HMAC, so cutting records off
the end is found too. What the chain cannot show on its own is a whole database put back to
an earlier copy: for that, note the head ``verify`` prints somewhere else from time to time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from kmipd.store.admin_queries import AUDIT_GENESIS as GENESIS
from kmipd.store.records import AuditRecord
from kmipd.store.store import Store

PURPOSE = "kmipd audit chain v1"


class AuditChain:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def link(self, previous: str, record: AuditRecord) -> str:
        """The hash of ``record`` following the record whose hash is ``previous``."""
        body = json.dumps(record.values(), separators=(",", ":"), ensure_ascii=True).encode()
        return hmac.new(self._key, bytes.fromhex(previous) + body, hashlib.sha256).hexdigest()

    def seal_head(self, last_hash: str, records: int) -> str:
        message = f"head:{last_hash}:{records}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``kmipd audit verify`` found."""

    ok: bool
    checked: int  # chained records checked
    unchained: int  # records written before the chain existed (not covered)
    head: str  # the last hash: note it elsewhere to detect a database rolled back
    problem: str | None = None  # what is wrong, and where (a sequence number)


PAGE = 5000


async def verify(store: Store, chain: AuditChain) -> Verification:
    """Walk the trail in order and check every link and the head."""
    previous = GENESIS
    checked = unchained = 0
    after = 0
    while True:
        page = await store.audit_chain_page(after, PAGE)
        if not page:
            break
        for seq, record, prev_hash, stored_hash in page:
            after = seq
            if stored_hash is None:
                if checked:
                    return _bad(checked, unchained, previous, f"record {seq} has no hash")
                unchained += 1  # written before the chain existed
                continue
            if prev_hash != previous:
                return _bad(
                    checked,
                    unchained,
                    previous,
                    f"record {seq} does not follow the record before it (one was removed, "
                    "inserted or moved there)",
                )
            if not hmac.compare_digest(chain.link(previous, record), stored_hash):
                return _bad(checked, unchained, previous, f"record {seq} was modified")
            previous = stored_hash
            checked += 1
    head = await store.audit_chain_head()
    last, count, mac = head if head is not None else (GENESIS, 0, None)
    if count == 0 and last == GENESIS and mac is None:
        if checked:
            return _bad(checked, unchained, previous, "the chain's head was reset")
    elif mac is None or not hmac.compare_digest(chain.seal_head(last, count), mac):
        return _bad(checked, unchained, previous, "the chain's head was modified")
    if (last, count) != (previous, checked):
        return _bad(
            checked,
            unchained,
            previous,
            f"the head names {count} records ending in {last[:16]}…, the trail holds "
            f"{checked} ending in {previous[:16]}…: records were removed from the end",
        )
    return Verification(True, checked, unchained, previous)


def _bad(checked: int, unchained: int, head: str, problem: str) -> Verification:
    return Verification(False, checked, unchained, head, problem)
