"""Locate: the objects of the client's instance that match every given attribute
(KMIP 1.4 §4.9, 2.1 §6.1.27).

Filters the store can index (Object Type, State, Cryptographic Algorithm and Length, the
first Name, Unique Identifier) go to the store; the rest are checked here:

* a multi-valued attribute (Name, Object Group, custom ``x-``/``y-``...) matches when any
  instance equals the given value;
* Cryptographic Usage Mask matches when the object allows every given bit;
* a date given twice is a range (earliest, latest, inclusive); once, an exact time;
* structures (Link, Cryptographic Parameters...) match when every given field is equal.

Destroyed objects are found only when a 2.x Storage Status Mask asks for them. Results are
newest first. Maximum Items limits, Offset Items skips (1.3+), and Located Items (1.3+)
reports how many matched when the client limited or offset the list.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kmipd.model.lifecycle import DESTROYED_STATES
from kmipd.model.searchable import indexable, is_searchable, texts_of
from kmipd.operations._common import all_attributes, apply_dates
from kmipd.protocol._generated import Operation, ResultReason, StorageStatusMask, Tag
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.payloads import LocateRequest, LocateResponse
from kmipd.protocol.ttlv import DATE_TIME, STRUCTURE, Item
from kmipd.service.context import RequestContext
from kmipd.service.errors import KmipError
from kmipd.service.repository import ManagedObject
from kmipd.store.records import ObjectQuery

OPERATION = Operation.LOCATE

_INDEXED = {
    "Object Type",
    "State",
    "Cryptographic Algorithm",
    "Cryptographic Length",
    "Unique Identifier",
}


def _query(ctx: RequestContext, given: dict[str, list[Attribute]]) -> ObjectQuery:
    """The store query for the indexed filters given once (the rest is checked here).

    State is not pushed down: a date reached since the last write changes it (apply_dates).
    """

    def single(name: str) -> Any:
        values = given.get(name, [])
        return values[0].value if len(values) == 1 else None

    object_type, uid, name = single("Object Type"), single("Unique Identifier"), single("Name")
    name_value = name.find(Tag.NAME_VALUE) if isinstance(name, Item) else None
    return ObjectQuery(
        instance=ctx.instance,
        object_types=(int(object_type),) if isinstance(object_type, int) else None,
        algorithm=_int(single("Cryptographic Algorithm")),
        length=_int(single("Cryptographic Length")),
        uids=(uid,) if isinstance(uid, str) else None,
        # The store indexes an object's first Name: an object found only by a later Name
        # is missed (objects with several Names are rare; vCenter sets none).
        name=name_value.value if name_value is not None else None,
        contains=_stored_texts(given),
    )


def _stored_texts(given: dict[str, list[Attribute]]) -> tuple[str, ...]:
    """Texts a matching object must hold (searchable.py): the values of the custom (x-, y-)
    attributes and Names asked for. The store narrows by them with its index; the exact
    match is still made here."""
    texts: set[str] = set()
    for name, wanted in given.items():
        if is_searchable(name):
            for attribute in wanted:
                texts.update(t for t in texts_of(attribute.value) if indexable(t))
    return tuple(sorted(texts))


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None


def _structure_matches(stored: Any, given: Any) -> bool:
    """Every field given is in the stored structure with the same value."""
    if not isinstance(stored, Item) or not isinstance(given, Item):
        return bool(stored == given)
    remaining = list(stored.value)
    for field in given.value:
        for index, candidate in enumerate(remaining):
            if candidate.tag == field.tag and (
                _structure_matches(candidate, field)
                if field.type == STRUCTURE
                else candidate.value == field.value
            ):
                del remaining[index]
                break
        else:
            return False
    return True


def _matches(obj: ManagedObject, name: str, wanted: list[Attribute]) -> bool:
    have = [a for a in all_attributes(obj) if a.name == name]
    if not have:
        return False
    if wanted[0].type == DATE_TIME or (
        wanted[0].type is None and name.endswith("Date") and isinstance(wanted[0].value, int)
    ):
        if not all(isinstance(w.value, int) for w in wanted):
            # Found by fuzzing: a date range whose other end is not a date crashed min().
            raise KmipError(
                ResultReason.INVALID_FIELD, f"a Locate {name} filter must be a Date-Time"
            )
        times = [a.value for a in have if isinstance(a.value, int)]
        if len(wanted) >= 2:
            low = min(w.value for w in wanted)
            high = max(w.value for w in wanted)
            return any(low <= t <= high for t in times)
        return wanted[0].value in times
    if name == "Cryptographic Usage Mask":
        allowed = have[0].value if isinstance(have[0].value, int) else 0
        return all(isinstance(w.value, int) and not w.value & ~allowed for w in wanted)
    return all(any(_structure_matches(a.value, w.value) for a in have) for w in wanted)


async def handle(ctx: RequestContext, request: LocateRequest) -> LocateResponse:
    given: dict[str, list[Attribute]] = defaultdict(list)
    for attribute in request.attributes:
        if attribute.value is None:
            raise KmipError(ResultReason.INVALID_FIELD, "a Locate attribute has no value")
        given[attribute.name].append(attribute)
    storage = request.storage_status_mask
    if storage is None:
        storage = StorageStatusMask.ON_LINE_STORAGE
    want_live = bool(storage & StorageStatusMask.ON_LINE_STORAGE)
    want_destroyed = ctx.version >= (2, 0) and bool(storage & StorageStatusMask.DESTROYED_STORAGE)
    if request.maximum_items is not None and request.maximum_items < 0:
        raise KmipError(ResultReason.INVALID_FIELD, "Maximum Items is negative")
    if request.offset_items is not None and request.offset_items < 0:
        raise KmipError(ResultReason.INVALID_FIELD, "Offset Items is negative")

    found: list[str] = []
    for obj in reversed(await ctx.objects.find(_query(ctx, given))):
        apply_dates(obj, ctx.now)
        destroyed = obj.state in DESTROYED_STATES
        if (destroyed and not want_destroyed) or (not destroyed and not want_live):
            continue
        if all(_matches(obj, name, wanted) for name, wanted in given.items()):
            found.append(obj.uid)

    total = len(found)
    offset = request.offset_items or 0
    found = found[offset:]
    if request.maximum_items is not None:
        found = found[: request.maximum_items]
    limited = request.maximum_items is not None or request.offset_items is not None
    return LocateResponse(
        located_items=total if limited and ctx.version >= (1, 3) else None,
        unique_identifiers=list(found),
    )
