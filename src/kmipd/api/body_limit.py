"""The HTTPS request body limit (``https.max_body_bytes``): a larger body gets 413 before it
is read whole, so a client cannot make the server hold an arbitrarily large body in memory
(ovh/kmip-go #18 allocated whatever Content-Length said; Cosmian's limit was 10 GB).

A declared ``Content-Length`` over the limit is refused at once, without reading any of the
body. A body without one (``Transfer-Encoding: chunked``) is read here, at most the limit
plus one chunk, before the application sees any of it: one byte over the limit and it is
refused. The server (h11) enforces a declared Content-Length, so a body that declares one
within the limit is passed through untouched.

The 413 carries the API's error body (``{"error": {"code": ..., "message": ...}}``). What the
client still sends of its body is read and discarded by uvicorn, never kept, until its
keep-alive timeout closes the connection.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kmipd.api.errors import send_error

DEFAULT_MAX_BODY_BYTES = 1 << 20


class BodyLimitMiddleware:
    """Pure ASGI middleware: the outermost layer of the API, so nothing inside it (routing,
    authentication, the audit trail) runs for a refused body."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_bytes:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        # No Content-Length: read what there is (nothing, for most requests) up to the limit.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # http.disconnect: the application sees it in turn
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        await send_error(
            send,
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_bytes} bytes, the limit "
            "(https.max_body_bytes)",
        )


def _content_length(scope: Scope) -> int | None:
    """The declared body size; an unparseable value counts as over any limit."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 1 << 62
    return None
