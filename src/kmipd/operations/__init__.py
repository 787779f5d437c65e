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
    check,
    create,
    create_key_pair,
    delete_attribute,
    destroy,
    discover_versions,
    get,
    get_attribute_list,
    get_attributes,
    interop,
    locate,
    log,
    modify_attribute,
    query,
    register,
    rekey,
    revoke,
    set_attribute,
)
from kmipd.protocol._generated import Operation

Handler = Callable[[Any, Any], Awaitable[Any]]

_MODULES = (
    discover_versions,
    query,
    create,
    create_key_pair,
    register,
    rekey,
    locate,
    check,
    get,
    get_attributes,
    get_attribute_list,
    add_attribute,
    modify_attribute,
    delete_attribute,
    set_attribute,
    activate,
    revoke,
    destroy,
    interop,
    log,
)

REGISTRY: dict[Operation, Handler] = {module.OPERATION: module.handle for module in _MODULES}
