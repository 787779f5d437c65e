"""ModifyAttribute: change the value of one attribute instance (KMIP 1.4 §4.15, 2.1 §6.1.32).

1.x names the instance by Attribute Index (0 when absent). 2.x names it by its current
value (Current Attribute), else the first instance. The attribute must exist; the client
must be allowed to change it, and some dates only in some states (see
:data:`kmipd.model.attribute_rules.MODIFIABLE_IN_STATES`).
"""

from __future__ import annotations

from kmipd.operations._attributes import rule_for_change
from kmipd.operations._common import apply_dates, check_unique_names, load, name_values, update
from kmipd.protocol._generated import Operation, ResultReason
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.payloads import ModifyAttributeRequest, ModifyAttributeResponse
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError
from kmipd.service.repository import ManagedObject

OPERATION = Operation.MODIFY_ATTRIBUTE


def instance_index(
    obj_attributes: list[Attribute], current: Attribute | None, index: int | None
) -> int:
    """The index of the instance a request names: by value (2.x), by index (1.x), else 0."""
    if current is not None:
        for attribute in obj_attributes:
            if same_value(attribute, current):
                return attribute.index or 0
        raise KmipError(
            ResultReason.ATTRIBUTE_INSTANCE_NOT_FOUND,
            f"the object has no attribute {current.name!r} with that value",
        )
    return index if index is not None else 0


def same_value(stored: Attribute, given: Attribute) -> bool:
    return stored.name == given.name and stored.value == given.value


async def handle(ctx: RequestContext, request: ModifyAttributeRequest) -> ModifyAttributeResponse:
    new = request.attribute
    if new is None or new.value is None:
        raise KmipError(ResultReason.INVALID_FIELD, "ModifyAttribute needs an attribute and value")
    current = request.current_attribute
    if current is not None and current.name != new.name:
        raise KmipError(
            ResultReason.INVALID_FIELD, "Current Attribute and New Attribute name different ones"
        )
    obj = await load(ctx, request.unique_identifier)
    rule_for_change(new.name, obj.state)
    if new.name == "Name":
        await check_unique_names(ctx, name_values([new]), obj.uid)

    def modify(obj: ManagedObject) -> None:
        rule_for_change(new.name, obj.state)
        instances = obj.attributes.all(new.name)
        if not instances:
            raise KmipError(
                ResultReason.ATTRIBUTE_NOT_FOUND, f"the object has no attribute {new.name!r}"
            )
        index = instance_index(instances, current, new.index)
        if not obj.attributes.replace(new.name, index, new.value, new.type):
            raise KmipError(
                ResultReason.ATTRIBUTE_INSTANCE_NOT_FOUND,
                f"the object has no instance {index} of attribute {new.name!r}",
            )
        apply_dates(obj, ctx.now)

    # Another connection may be tagging or fetching the same key meanwhile.
    obj, _ = await update(ctx, obj.uid, modify)
    return ModifyAttributeResponse(
        unique_identifier=obj.uid,
        attribute=Attribute(new.name, new.value, new.index, new.type),
    )
