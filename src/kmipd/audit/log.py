"""The one writer of the audit trail.

Every KMIP batch item and every HTTPS request to the API becomes a record: time, actor (the
client certificate's SHA-256 fingerprint, or the API key's service ID), channel (``kmip`` or
``https``), action, instance, object UID, result and a reason code. A record never holds key
material, secrets, request bodies or free-text messages: only names and identifiers the
server chose or the route declared.

**Durable first, and fail closed.** ``record``/``kmip_batch`` return once the records are
committed (fsync on SQLite, a flushed commit on PostgreSQL); when they cannot be written they
raise :class:`AuditUnavailable` and the caller fails the request without changing anything
(the KMIP engine undoes the batch; an HTTPS change is refused before it runs).

**Group commit.** Callers queue their records; one writer task appends everything queued in
one transaction, so concurrent requests share a commit: the trail costs one commit per busy
moment, not one per request. Records are chained (:mod:`kmipd.audit.chain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from kmipd.audit.chain import AuditChain
from kmipd.protocol import messages
from kmipd.protocol._generated import Operation, ResultReason, ResultStatus
from kmipd.service.identity import ClientIdentity
from kmipd.store.records import AuditQuery, AuditRecord
from kmipd.store.store import Store, StoreError

log = logging.getLogger(__name__)

KMIP = "kmip"
HTTPS = "https"
SUCCESS = "success"
FAILURE = "failure"
UNDONE = "undone"  # a KMIP batch item rolled back by Batch Undo


def operation_name(operation: object) -> str:
    """``Create``, ``AddAttribute``, ...: the KMIP name of an operation code."""
    try:
        return _operation_name(operation)
    except TypeError:  # not hashable: not an operation code
        return "Unknown"


@functools.lru_cache(maxsize=256)
def _operation_name(operation: object) -> str:
    try:
        return Operation(operation).name.title().replace("_", "")  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return "Unknown"


def _reason_name(reason: object) -> str | None:
    if reason is None:
        return None
    try:
        return ResultReason(reason).name.title().replace("_", "")  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return "Unknown"


# KMIP operations that change no object (Get's "last fetched" bookkeeping aside, which is
# written durably on its own): their records may reach the disk after the answer.
READ_ONLY = frozenset(
    (
        Operation.GET,
        Operation.GET_ATTRIBUTES,
        Operation.GET_ATTRIBUTE_LIST,
        Operation.LOCATE,
        Operation.CHECK,
        Operation.QUERY,
        Operation.DISCOVER_VERSIONS,
    )
)


class AuditUnavailable(Exception):
    """The audit trail cannot be written: the request must fail and change nothing."""


# The most records one commit takes (the rest wait for the next one).
GROUP_MAX = 1000


class AuditLog:
    def __init__(
        self,
        store: Store,
        chain: AuditChain,
        clock: Callable[[], float] = time.time,
        *,
        sync_reads: bool = True,
    ) -> None:
        self._sync_reads = sync_reads
        self._store = store
        self._chain = chain
        self._clock = clock
        self._queue: list[tuple[list[AuditRecord], asyncio.Future[None], bool]] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None

    def entry(
        self,
        *,
        actor: str,
        channel: str,
        action: str,
        instance: str | None = None,
        uid: str | None = None,
        result: str = SUCCESS,
        reason: str | None = None,
    ) -> AuditRecord:
        return AuditRecord(
            time=int(self._clock()),
            actor=actor,
            channel=channel,
            action=action,
            instance=instance,
            uid=uid,
            result=result,
            reason=reason,
        )

    async def record(self, **fields: Any) -> None:
        """Write one record (the fields of :meth:`entry`) durably, or raise AuditUnavailable."""
        await self.write([self.entry(**fields)])

    async def write(self, records: list[AuditRecord], *, durable: bool = True) -> None:
        """Append ``records`` (sharing a commit with whatever else is queued), or raise
        :class:`AuditUnavailable`. ``durable``: on disk before this returns; else committed,
        and on disk within the store's flush delay (:meth:`Database.write`)."""
        if not records:
            return
        if self._writer is None or self._writer.done():
            self._wake = asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(self._write_forever())
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((records, done, durable))
        assert self._wake is not None
        self._wake.set()
        await done

    async def _write_forever(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, taken = [], 0
                while self._queue and (not batch or taken + len(self._queue[0][0]) <= GROUP_MAX):
                    item = self._queue.pop(0)
                    batch.append(item)
                    taken += len(item[0])
                await self._commit(batch)

    async def _commit(
        self, batch: list[tuple[list[AuditRecord], asyncio.Future[None], bool]]
    ) -> None:
        records = [record for records, _, _ in batch for record in records]
        durable = any(durable for _, _, durable in batch)
        try:
            await self._store.append_audit(records, self._chain, durable=durable)
        except Exception as exc:
            if isinstance(exc, StoreError):
                log.error("could not write %d audit record(s): %s", len(records), exc)
            else:
                log.exception("could not write %d audit record(s)", len(records))
            failure = AuditUnavailable("the audit trail cannot be written")
            for _, done, _ in batch:
                if not done.done():
                    done.set_exception(failure)
            return
        for _, done, _ in batch:
            if not done.done():
                done.set_result(None)

    async def close(self) -> None:
        """Stop the writer once what is queued is written (or failed)."""
        if self._writer is None:
            return
        while self._queue:
            await asyncio.sleep(0.01)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    def kmip_entry(
        self,
        client: ClientIdentity,
        request: messages.RequestBatchItem,
        response: messages.ResponseBatchItem,
    ) -> AuditRecord:
        uid = getattr(response.payload, "unique_identifier", None)
        if not isinstance(uid, str):
            uid = getattr(request.payload, "unique_identifier", None)
        status = response.result_status
        if status == ResultStatus.SUCCESS:
            result, reason = SUCCESS, None
        elif status == ResultStatus.OPERATION_UNDONE:
            result, reason = UNDONE, None
        else:
            result, reason = FAILURE, _reason_name(response.result_reason)
        return self.entry(
            actor=client.fingerprint,
            channel=KMIP,
            action=operation_name(request.operation),
            instance=client.instance,
            uid=uid if isinstance(uid, str) else None,
            result=result,
            reason=reason,
        )

    async def kmip_batch(
        self,
        client: ClientIdentity,
        requests: list[messages.RequestBatchItem],
        responses: list[messages.ResponseBatchItem],
    ) -> None:
        """The engine's hook: one record per batch item it ran, committed together; on disk
        before this returns unless every item is an operation that changes nothing and
        ``sync_reads`` is off."""
        durable = self._sync_reads or any(q.operation not in READ_ONLY for q in requests)
        await self.write(
            [self.kmip_entry(client, q, r) for q, r in zip(requests, responses, strict=False)],
            durable=durable,
        )

    async def query(self, query: AuditQuery) -> tuple[list[AuditRecord], int]:
        return await self._store.audit_records(query)
