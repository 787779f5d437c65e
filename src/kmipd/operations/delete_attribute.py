"""DeleteAttribute: remove one attribute instance, or all of them (KMIP 1.4 §4.16, 2.1).

1.x names the instance by Attribute Index (0 when absent); the instances after it move down
one index. 2.x names it by value (Current Attribute), or names the attribute (Attribute
Reference), which deletes every instance.
"""

from __future__ import annotations

from kmipd.operations._attributes import rule_for_change
from kmipd.operations._common import update
from kmipd.operations.modify_attribute import instance_index
from kmipd.protocol._generated import Operation, ResultReason
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.payloads import DeleteAttributeRequest, DeleteAttributeResponse
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError
from kmipd.service.repository import ManagedObject

OPERATION = Operation.DELETE_ATTRIBUTE


async def handle(ctx: RequestContext, request: DeleteAttributeRequest) -> DeleteAttributeResponse:
    current = request.current_attribute
    name = current.name if current is not None else request.attribute_name
    if not name:
        raise KmipError(ResultReason.INVALID_FIELD, "DeleteAttribute needs an attribute name")

    def delete(obj: ManagedObject) -> Attribute | None:
        rule_for_change(name, obj.state, deleting=True)
        instances = obj.attributes.all(name)
        if not instances:
            raise KmipError(
                ResultReason.ATTRIBUTE_NOT_FOUND, f"the object has no attribute {name!r}"
            )
        if ctx.version >= (2, 0) and current is None:
            obj.attributes.delete(name)
            return None
        index = instance_index(instances, current, request.attribute_index)
        deleted = obj.attributes.get(name, index)
        if deleted is None or not obj.attributes.delete(name, index):
            raise KmipError(
                ResultReason.ATTRIBUTE_INSTANCE_NOT_FOUND,
                f"the object has no instance {index} of attribute {name!r}",
            )
        if request.attribute_index is None:
            deleted = Attribute(deleted.name, deleted.value, None, deleted.type)
        return deleted

    # Another connection may be tagging or fetching the same key meanwhile.
    obj, deleted = await update(ctx, request.unique_identifier, delete)
    return DeleteAttributeResponse(unique_identifier=obj.uid, attribute=deleted)
