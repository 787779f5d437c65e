"""AddAttribute: a new attribute, or a new instance of a multi-valued one (KMIP 1.4 §4.13)."""

from __future__ import annotations

from kmipd.model.attribute_rules import MODIFIABLE_IN_STATES, rule
from kmipd.operations._common import check_unique_names, name_values, update
from kmipd.protocol._generated import Operation, ResultReason
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.payloads import AddAttributeRequest, AddAttributeResponse
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError
from kmipd.service.repository import ManagedObject

OPERATION = Operation.ADD_ATTRIBUTE


async def handle(ctx: RequestContext, request: AddAttributeRequest) -> AddAttributeResponse:
    attribute = request.attribute
    if attribute is None or attribute.value is None:
        raise KmipError(ResultReason.INVALID_FIELD, "AddAttribute needs an attribute and a value")
    found = rule(attribute.name)
    if found is None:
        raise KmipError(
            ResultReason.INVALID_ATTRIBUTE, f"attribute {attribute.name!r} is not supported"
        )
    if not found.set_by_client:
        raise KmipError(
            ResultReason.ATTRIBUTE_READ_ONLY, f"attribute {attribute.name!r} is set by the server"
        )

    if attribute.name == "Name":
        # Unique among the instance's objects, this one included (KMIP 2.1 §4.41).
        await check_unique_names(ctx, name_values([attribute]), None)

    states = MODIFIABLE_IN_STATES.get(attribute.name)

    def add(obj: ManagedObject) -> int:
        if states is not None and obj.state not in states:
            raise KmipError(
                ResultReason.WRONG_KEY_LIFECYCLE_STATE,
                f"attribute {attribute.name!r} cannot be set in the object's current state",
            )
        if obj.attributes.count(attribute.name) and not found.multi_valued:
            raise KmipError(
                ResultReason.ATTRIBUTE_SINGLE_VALUED,
                f"attribute {attribute.name!r} is already set and has only one value",
            )
        return obj.attributes.add(attribute)

    # vCenter tags a key on one connection while it activates it on another.
    obj, index = await update(ctx, request.unique_identifier, add)
    return AddAttributeResponse(
        unique_identifier=obj.uid,
        attribute=Attribute(attribute.name, attribute.value, index, attribute.type),
    )
