"""Log: a client's message for the server's log (KMIP 2.1 §6.1.30).

The text is client-controlled: it goes to the audit notes, never to the log as it is.
"""

from __future__ import annotations

from kmipd.protocol._generated import Operation
from kmipd.protocol.payloads import EmptyPayload, LogRequest
from kmipd.service.context import RequestContext

OPERATION = Operation.LOG

MAX_NOTE = 256


async def handle(ctx: RequestContext, request: LogRequest) -> EmptyPayload:
    ctx.notes["log_message"] = (request.log_message or "")[:MAX_NOTE]
    return EmptyPayload()
