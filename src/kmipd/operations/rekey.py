"""ReKey: a new symmetric key replacing an existing one (KMIP 1.4 §4.4, 2.1 §6.1.41).

The new key has the old key's algorithm, length and client attributes (a template in the
request may override them). The Names move to the new key. The old key keeps its material
and stays retrievable; the keys are linked (old: Replacement Object → new; new: Replaced
Object → old). With an Offset, the new key's Activation Date is now + Offset, and its
Deactivation and Protect Stop Dates keep the old key's distance from activation; without
one, the old key's dates are copied.
"""

from __future__ import annotations

from kmipd.model.attribute_rules import rule
from kmipd.model.lifecycle import DESTROYED_STATES
from kmipd.operations._attributes import check_client_attributes
from kmipd.operations._common import (
    apply_dates,
    check_unique_names,
    load,
    name_values,
    new_attribute_set,
    server_attributes,
    update,
)
from kmipd.operations.create import check_symmetric, material_bytes, symmetric_key
from kmipd.protocol._generated import LinkType, ObjectType, Operation, ResultReason, State, Tag
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.payloads import ReKeyRequest, ReKeyResponse, requested_attributes
from kmipd.protocol.ttlv import DATE_TIME, ENUMERATION, STRUCTURE, TEXT_STRING, Item
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError
from kmipd.service.repository import ManagedObject

OPERATION = Operation.RE_KEY

_DATES = ("Activation Date", "Deactivation Date", "Protect Stop Date", "Process Start Date")
# Client attributes that describe the old key's history, not the new key.
_NOT_CARRIED = frozenset(("Link", "Compromise Occurrence Date"))


def link(link_type: LinkType, uid: str) -> Attribute:
    value = Item(
        Tag.LINK,
        STRUCTURE,
        [
            Item(Tag.LINK_TYPE, ENUMERATION, link_type),
            Item(Tag.LINKED_OBJECT_IDENTIFIER, TEXT_STRING, uid),
        ],
    )
    return Attribute("Link", value, None, STRUCTURE)


async def handle(ctx: RequestContext, request: ReKeyRequest) -> ReKeyResponse:
    old = await load(ctx, request.unique_identifier)
    if old.object_type != ObjectType.SYMMETRIC_KEY:
        raise KmipError(ResultReason.INVALID_OBJECT_TYPE, "ReKey replaces symmetric keys")
    if old.state in DESTROYED_STATES:
        raise KmipError(ResultReason.OBJECT_DESTROYED, "the object was destroyed")
    template = requested_attributes(request)
    check_client_attributes(template)
    # The old key's Names move to the new key; a Name given here must be free.
    await check_unique_names(ctx, name_values(template), old.uid)

    # The old key's client attributes (dates and links are worked out below).
    carried = [
        a
        for a in old.attributes
        if (found := rule(a.name)) is not None
        and found.set_by_client
        and a.name not in _DATES
        and a.name not in _NOT_CARRIED
    ]
    overridden = {a.name for a in template}
    attributes = [a for a in carried if a.name not in overridden] + template
    stored = new_attribute_set(attributes, ctx.now)

    old_activation = old.attributes.value("Activation Date")
    if request.offset is not None:
        activation = ctx.now + request.offset
        stored.set("Activation Date", activation, DATE_TIME)
        for name in ("Deactivation Date", "Protect Stop Date"):
            old_date = old.attributes.value(name)
            if isinstance(old_date, int) and isinstance(old_activation, int):
                stored.set(name, activation + (old_date - old_activation), DATE_TIME)
    else:
        for name in _DATES:
            if name not in overridden and isinstance(old.attributes.value(name), int):
                stored.set(name, old.attributes.value(name), DATE_TIME)

    algorithm, length = check_symmetric(
        stored.value("Cryptographic Algorithm"), stored.value("Cryptographic Length")
    )
    body = symmetric_key(algorithm, length, material_bytes(algorithm, length))
    stored.delete("Fresh")
    server_attributes(stored, body, ctx.now, generated=True)
    stored.add(link(LinkType.REPLACED_OBJECT_LINK, old.uid))
    new = await ctx.objects.create(
        ctx.instance, ObjectType.SYMMETRIC_KEY, body, stored, ctx.now, State.PRE_ACTIVE
    )
    apply_dates(new, ctx.now)
    if new.state != State.PRE_ACTIVE:
        await ctx.objects.save(new, ctx.now)

    def hand_over(current: ManagedObject) -> None:
        if current.state in DESTROYED_STATES:
            raise KmipError(ResultReason.OBJECT_DESTROYED, "the object was destroyed")
        current.attributes.delete("Name")
        current.attributes.add(link(LinkType.REPLACEMENT_OBJECT_LINK, new.uid))

    # Another connection may be changing the old key meanwhile: retry; if the old key
    # cannot be updated, the new key goes (no orphan holding the old key's Names).
    try:
        await update(ctx, old.uid, hand_over)
    except Exception:
        await ctx.objects.discard(new)
        raise
    ctx.id_placeholder = new.uid
    return ReKeyResponse(unique_identifier=new.uid)
