"""The audit trail (Reader): who did what over KMIP and HTTPS, with filters and paging."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from kmipd.api.auth import Principal, Role
from kmipd.api.deps import audit_log, require
from kmipd.api.errors import ApiError
from kmipd.api.routes._responses import errors
from kmipd.store.records import AuditQuery

router = APIRouter(prefix="/admin/v1/audit", tags=["Audit"])

Reader = Annotated[Principal, Depends(require(Role.READER))]


class AuditOut(BaseModel):
    seq: int = Field(description="increases with each record")
    time: int = Field(description="seconds since the epoch")
    actor: str = Field(description="client certificate SHA-256 fingerprint, or service ID")
    channel: str = Field(description="kmip or https")
    action: str = Field(description="KMIP operation (Create, Get, ...) or API action")
    instance: str | None
    uid: str | None = Field(description="the object, certificate or key it concerned")
    result: str = Field(description="success, failure or undone")
    reason: str | None = Field(description="why it failed: a KMIP Result Reason or error code")


class AuditList(BaseModel):
    records: list[AuditOut]
    total: int
    limit: int
    offset: int


def parse_time(text: str | None, what: str) -> int | None:
    """Seconds since the epoch, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    if text is None:
        return None
    if text.strip().lstrip("-").isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ApiError(
            400,
            "invalid_request",
            f"{what} must be seconds since the epoch or ISO 8601 (2024-05-01T12:00:00Z)",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


@router.get("", response_model=AuditList, responses=errors(400))
async def list_audit(
    request: Request,
    _: Reader,
    actor: str | None = None,
    action: str | None = None,
    instance: str | None = None,
    uid: str | None = None,
    result: Annotated[str | None, Query(pattern="^(success|failure|undone)$")] = None,
    channel: Annotated[str | None, Query(pattern="^(kmip|https)$")] = None,
    since: Annotated[str | None, Query(description="epoch seconds or ISO 8601")] = None,
    until: Annotated[str | None, Query(description="epoch seconds or ISO 8601")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditList:
    """Newest first."""
    query = AuditQuery(
        actor=actor,
        action=action,
        instance=instance,
        uid=uid,
        result=result,
        channel=channel,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        limit=limit,
        offset=offset,
    )
    records, total = await audit_log(request).query(query)
    return AuditList(
        records=[
            AuditOut(
                seq=r.seq or 0,
                time=r.time,
                actor=r.actor,
                channel=r.channel,
                action=r.action,
                instance=r.instance,
                uid=r.uid,
                result=r.result,
                reason=r.reason,
            )
            for r in records
        ],
        total=total,
        limit=limit,
        offset=offset,
    )
