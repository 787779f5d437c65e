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
    decrypt,
    delete_attribute,
    destroy,
    discover_versions,
    encrypt,
    get,
    get_attribute_list,
    get_attributes,
    hash,
    interop,
    locate,
    log,
    mac,
    mac_verify,
    modify_attribute,
    query,
    register,
    rekey,
    revoke,
    rng_retrieve,
    set_attribute,
    sign,
    signature_verify,
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
    encrypt,
    decrypt,
    sign,
    signature_verify,
    mac,
    mac_verify,
    hash,
    rng_retrieve,
)

REGISTRY: dict[Operation, Handler] = {module.OPERATION: module.handle for module in _MODULES}
