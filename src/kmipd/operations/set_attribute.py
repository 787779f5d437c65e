"""SetAttribute (KMIP 2.x): set a single-valued attribute, creating or replacing it.

Multi-valued attributes are refused (Multi Valued Attribute: use Add/Modify/Delete).
"""

from __future__ import annotations

from kmipd.model.attribute_rules import MODIFIABLE_IN_STATES, rule
from kmipd.operations._common import apply_dates, update
from kmipd.protocol._generated import Operation, ResultReason
from kmipd.protocol.payloads import SetAttributeRequest, UidResponse
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError
from kmipd.service.repository import ManagedObject

OPERATION = Operation.SET_ATTRIBUTE


async def handle(ctx: RequestContext, request: SetAttributeRequest) -> UidResponse:
    new = request.attribute
    if new is None or new.value is None:
        raise KmipError(ResultReason.INVALID_FIELD, "SetAttribute needs an attribute and value")
    found = rule(new.name)
    if found is None:
        raise KmipError(ResultReason.INVALID_ATTRIBUTE, f"attribute {new.name!r} is not supported")
    if found.multi_valued:
        raise KmipError(
            ResultReason.MULTI_VALUED_ATTRIBUTE,
            f"attribute {new.name!r} may have several values; use AddAttribute",
        )

    def set_attribute(obj: ManagedObject) -> None:
        exists = new.name in obj.attributes
        if not (found.modifiable if exists else found.set_by_client):
            raise KmipError(
                ResultReason.ATTRIBUTE_READ_ONLY,
                f"attribute {new.name!r} cannot be set by a client",
            )
        states = MODIFIABLE_IN_STATES.get(new.name)
        if states is not None and obj.state not in states:
            raise KmipError(
                ResultReason.WRONG_KEY_LIFECYCLE_STATE,
                f"attribute {new.name!r} cannot be changed in the object's current state",
            )
        obj.attributes.set(new.name, new.value, new.type)
        apply_dates(obj, ctx.now)

    # Another connection may be tagging or fetching the same key meanwhile.
    obj, _ = await update(ctx, request.unique_identifier, set_attribute)
    return UidResponse(unique_identifier=obj.uid)
