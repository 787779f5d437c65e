"""One module per KMIP operation, and the one registry that dispatches them.

Each module has ``OPERATION`` and ``async def handle(ctx, request) -> response``; it raises
:class:`kmipd.service.errors.KmipError` to fail its batch item.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kmipd.operations import (
    activate,
    add_attribute,
    create,
    discover_versions,
    get,
    get_attributes,
    query,
)
from kmipd.protocol._generated import Operation

Handler = Callable[[Any, Any], Awaitable[Any]]

_MODULES = (
    discover_versions,
    query,
    create,
    get,
    get_attributes,
    add_attribute,
    activate,
)

REGISTRY: dict[Operation, Handler] = {module.OPERATION: module.handle for module in _MODULES}
