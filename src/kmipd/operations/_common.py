"""Helpers shared by the operation modules."""

from __future__ import annotations

from typing import Any

from kmipd.model.attribute_set import AttributeSet
from kmipd.model.lifecycle import DESTROYED_STATES
from kmipd.protocol._generated import ObjectType, ResultReason, State
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.ttlv import DATE_TIME, ENUMERATION, TEXT_STRING, Item
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError
from kmipd.service.repository import ManagedObject


def resolve_uid(ctx: RequestContext, value: str | Item | None) -> str:
    """The UID a request names, or the batch's ID Placeholder when it names none."""
    if isinstance(value, str) and value:
        return value
    if value is None or isinstance(value, Item):
        # Absent (1.x) or an ID Placeholder enumeration (2.x): the previous result.
        if ctx.id_placeholder is not None:
            return ctx.id_placeholder
        raise KmipError(
            ResultReason.MISSING_DATA if value is None else ResultReason.INVALID_FIELD,
            "no Unique Identifier given and no ID Placeholder from an earlier batch item",
        )
    raise KmipError(ResultReason.INVALID_FIELD, "the Unique Identifier is empty")


async def load(
    ctx: RequestContext, value: str | Item | None, *, body: bool = False
) -> ManagedObject:
    obj = await ctx.objects.get(ctx.instance, resolve_uid(ctx, value), load_body=False)
    apply_dates(obj, ctx.now)
    if body:
        if obj.state in DESTROYED_STATES:
            raise KmipError(ResultReason.OBJECT_DESTROYED, "the object was destroyed")
        await ctx.objects.load_body(obj)
    return obj


def apply_dates(obj: ManagedObject, now: int) -> None:
    """Date-driven transitions: Activation Date reached, Deactivation Date reached."""
    if obj.state == State.PRE_ACTIVE:
        activation = obj.attributes.value("Activation Date")
        if isinstance(activation, int) and activation <= now:
            obj.state = State.ACTIVE
    if obj.state == State.ACTIVE:
        deactivation = obj.attributes.value("Deactivation Date")
        if isinstance(deactivation, int) and deactivation <= now:
            obj.state = State.DEACTIVATED


def touch(obj: ManagedObject, now: int) -> None:
    obj.attributes.set("Last Change Date", now, DATE_TIME)


def all_attributes(obj: ManagedObject) -> list[Attribute]:
    """Every attribute of ``obj``: the ones kept in columns first, then the stored ones."""
    synthesized = [
        Attribute("Unique Identifier", obj.uid, None, TEXT_STRING),
        Attribute("Object Type", ObjectType(obj.object_type), None, ENUMERATION),
        Attribute("State", State(obj.state), None, ENUMERATION),
    ]
    stored = [a for a in obj.attributes if a.name not in _SYNTHESIZED]
    # Indexes are per attribute name; the synthesized ones are single-valued.
    return [Attribute(a.name, a.value, 0, a.type) for a in synthesized] + stored


_SYNTHESIZED = frozenset(("Unique Identifier", "Object Type", "State"))


def attribute_names(obj: ManagedObject) -> list[str]:
    seen: dict[str, None] = {}
    for attribute in all_attributes(obj):
        seen.setdefault(attribute.name, None)
    return list(seen)


def new_attribute_set(attributes: list[Attribute], now: int) -> AttributeSet:
    result = AttributeSet(attributes)
    result.set("Initial Date", now, DATE_TIME)
    result.set("Last Change Date", now, DATE_TIME)
    return result


def first(values: list[Any]) -> Any:
    return values[0] if values else None
