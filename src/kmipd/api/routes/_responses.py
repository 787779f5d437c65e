"""The error answers a route declares in the OpenAPI document (kmipd's error body)."""

from __future__ import annotations

from typing import Any

_DESCRIPTIONS = {
    400: "the request is invalid; the message says what to fix",
    404: "no such instance, certificate or key",
    409: "it conflicts with what exists; the message says what to do",
    503: "the server cannot do this now (e.g. its CA key is unavailable)",
}
_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ApiErrorBody"}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"description": _DESCRIPTIONS[s], "content": _BODY} for s in statuses}
