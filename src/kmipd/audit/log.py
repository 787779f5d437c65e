"""The one writer of the audit trail.

Every KMIP batch item and every HTTPS request that changes something becomes one record:
time, actor (the client certificate's SHA-256 fingerprint, or the API key's service ID),
channel (``kmip`` or ``https``), action, instance, object UID, result and a reason code.
A record never holds key material, secrets, request bodies or free-text messages: only names
and identifiers the server chose or the route declared.

Today a failed audit write is logged and the request goes on; it is kept in this one module so
that it can become hash-chained and fail-closed without touching its callers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

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


class AuditLog:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        *,
        actor: str,
        channel: str,
        action: str,
        instance: str | None = None,
        uid: str | None = None,
        result: str = SUCCESS,
        reason: str | None = None,
    ) -> None:
        entry = AuditRecord(
            time=int(self._clock()),
            actor=actor,
            channel=channel,
            action=action,
            instance=instance,
            uid=uid,
            result=result,
            reason=reason,
        )
        try:
            await self._store.add_audit(entry)
        except StoreError as exc:  # the database is down: say so, once per record, briefly
            log.error("could not write an audit record of %s by %s: %s", action, actor, exc)
        except Exception:
            log.exception("could not write an audit record of %s by %s", action, actor)

    async def kmip_item(
        self,
        client: ClientIdentity,
        request: messages.RequestBatchItem,
        response: messages.ResponseBatchItem,
    ) -> None:
        """The engine's hook: one record per batch item it ran."""
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
        await self.record(
            actor=client.fingerprint,
            channel=KMIP,
            action=operation_name(request.operation),
            instance=client.instance,
            uid=uid if isinstance(uid, str) else None,
            result=result,
            reason=reason,
        )

    async def query(self, query: AuditQuery) -> tuple[list[AuditRecord], int]:
        return await self._store.audit_records(query)
