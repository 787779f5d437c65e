"""Revoke: Active (or Pre-Active) to Deactivated, or to Compromised (KMIP 1.4 §4.20).

A compromise reason (Key Compromise, CA Compromise) moves the object to Compromised and sets
Compromise Date (now) and Compromise Occurrence Date (the client's, else now); any other
reason deactivates it and sets Deactivation Date. The Revocation Reason is kept as an
attribute.
"""

from __future__ import annotations

from kmipd.model.lifecycle import Event, next_state
from kmipd.operations._common import update
from kmipd.protocol._generated import Operation, ResultReason, RevocationReasonCode, State, Tag
from kmipd.protocol.payloads import RevokeRequest, UidResponse
from kmipd.protocol.ttlv import DATE_TIME, ENUMERATION, STRUCTURE, TEXT_STRING, Item
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError
from kmipd.service.repository import ManagedObject

OPERATION = Operation.REVOKE

COMPROMISE = frozenset((RevocationReasonCode.KEY_COMPROMISE, RevocationReasonCode.CA_COMPROMISE))


async def handle(ctx: RequestContext, request: RevokeRequest) -> UidResponse:
    reason = request.revocation_reason
    if reason is None or reason.code is None:
        raise KmipError(ResultReason.MISSING_DATA, "Revoke needs a Revocation Reason")
    compromised = reason.code in COMPROMISE
    children = [Item(Tag.REVOCATION_REASON_CODE, ENUMERATION, reason.code)]
    if reason.message is not None:
        children.append(Item(Tag.REVOCATION_MESSAGE, TEXT_STRING, reason.message))

    def revoke(obj: ManagedObject) -> None:
        obj.state = next_state(obj.state, Event.REVOKE_COMPROMISE if compromised else Event.REVOKE)
        if compromised:
            occurred = request.compromise_occurrence_date
            obj.attributes.set("Compromise Date", ctx.now, DATE_TIME)
            obj.attributes.set(
                "Compromise Occurrence Date",
                occurred if occurred is not None else ctx.now,
                DATE_TIME,
            )
        elif obj.state == State.DEACTIVATED:
            deactivation = obj.attributes.value("Deactivation Date")
            if not isinstance(deactivation, int) or deactivation > ctx.now:
                obj.attributes.set("Deactivation Date", ctx.now, DATE_TIME)
        obj.attributes.set("Revocation Reason", Item(Tag.REVOCATION_REASON, STRUCTURE, children))

    # Another connection may be tagging or fetching the same key meanwhile.
    obj, _ = await update(ctx, request.unique_identifier, revoke)
    return UidResponse(unique_identifier=obj.uid)
