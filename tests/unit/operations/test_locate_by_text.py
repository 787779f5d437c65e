"""Locate by an x- attribute or a Name: the store narrows the candidates to objects whose
custom attributes or Names hold the text (its index object_texts), and the exact match
decides. A value that
only contains the one asked for ("vm-10" for "vm-1"), one set after the key was made, one
changed away, or one of another instance is never returned wrongly; Unicode works."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kmipd.model.searchable import MAX_INDEXED_TEXT
from kmipd.protocol._generated import Operation, ResultReason
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.payloads import (
    AddAttributeRequest,
    DeleteAttributeRequest,
    LocateRequest,
    ModifyAttributeRequest,
    UidRequest,
)
from kmipd.protocol.ttlv import BYTE_STRING, DATE_TIME, TEXT_STRING
from kmipd.store.records import ObjectQuery
from kmipd.store.store import Store
from tests.support.kmip import name_attribute
from tests.unit.operations.conftest import EngineHarness
from tests.unit.operations.test_operations import OK, create


def x_name(value: str) -> Attribute:
    return Attribute("x-Name", value, None, TEXT_STRING)


def locate(kmip: EngineHarness, *attrs: Attribute, instance: str = "default") -> list[str]:
    result = kmip.call(Operation.LOCATE, LocateRequest(attributes=list(attrs)), instance=instance)
    assert result.result_status == OK, result.result_message
    return list(result.payload.unique_identifiers)


def test_locate_by_text_finds_exactly_the_matching_keys(kmip: EngineHarness) -> None:
    vm1 = create(kmip, x_name("vm-1"))
    create(kmip, x_name("vm-10"))
    create(kmip, x_name("prefix vm-1 suffix"))
    unicode = create(kmip, x_name("VM ✓ Zürich"))
    named = create(kmip, name_attribute("disk-ø"))
    kmip.add_instance("other")
    create(kmip, x_name("vm-1"), instance="other")
    late = create(kmip)
    kmip.call(
        Operation.ADD_ATTRIBUTE,
        AddAttributeRequest(unique_identifier=late, attribute=x_name("vm-1")),
        version=(1, 4),
    )
    assert set(locate(kmip, x_name("vm-1"))) == {vm1, late}
    assert locate(kmip, x_name("VM ✓ Zürich")) == [unicode]
    assert locate(kmip, name_attribute("disk-ø")) == [named]
    assert locate(kmip, x_name("vm-")) == []
    kmip.call(
        Operation.MODIFY_ATTRIBUTE,
        ModifyAttributeRequest(
            unique_identifier=late, attribute=Attribute("x-Name", "vm-2", 0, TEXT_STRING)
        ),
        version=(1, 4),
    )
    assert locate(kmip, x_name("vm-1")) == [vm1]
    assert len(locate(kmip, x_name("vm-1"), instance="other")) == 1


def test_the_store_narrows_by_its_text_index_on_both_engines(kmip: EngineHarness) -> None:
    made = {value: create(kmip, x_name(value)) for value in ("vm-1", "vm-10", "other")}
    rows = kmip.loop.run_until_complete(
        kmip.store.find_objects(ObjectQuery("default", contains=("vm-1",)))
    )
    assert [row.uid for row in rows] == [made["vm-1"]]  # the text, not "vm-10"
    none = kmip.loop.run_until_complete(
        kmip.store.find_objects(ObjectQuery("default", contains=("vm-1", "absent")))
    )
    assert none == []


def test_the_index_follows_deletes_and_long_texts_are_still_found(kmip: EngineHarness) -> None:
    long_text = "vm-" + "x" * (MAX_INDEXED_TEXT + 10)
    long = create(kmip, x_name(long_text))  # not indexed: found by reading the objects
    gone = create(kmip, x_name("vm-gone"))
    assert locate(kmip, x_name(long_text)) == [long]
    kmip.call(
        Operation.DELETE_ATTRIBUTE,
        DeleteAttributeRequest(unique_identifier=gone, attribute_name="x-Name"),
        version=(1, 4),
    )
    assert locate(kmip, x_name("vm-gone")) == []
    kept = create(kmip, x_name("vm-kept"))
    destroyed = create(kmip, x_name("vm-kept"))
    assert kmip.call(Operation.DESTROY, UidRequest(unique_identifier=destroyed)).result_status == OK
    assert locate(kmip, x_name("vm-kept")) == [kept]


def test_locate_by_text_uses_the_index_not_a_scan(tmp_path: Path) -> None:
    """SQLite's plan for the very query find_objects makes for Locate by x-Name: the text
    index first, then each object by its UID; never a walk over the instance's objects."""

    async def plan() -> list[str]:
        store = Store.sqlite(tmp_path / "kmipd.db")
        await store.open()
        ran: list[tuple[str, tuple[object, ...]]] = []
        query = store._query

        async def capture(sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
            ran.append((sql, params))
            return await query(sql, params)

        store._query = capture  # type: ignore[method-assign]
        try:
            await store.find_objects(ObjectQuery("default", contains=("vm-1", "VMware")))
            (sql, params), = ran
            return [str(row[-1]) for row in await query(f"EXPLAIN QUERY PLAN {sql}", params)]
        finally:
            await store.close()

    steps = asyncio.run(plan())
    assert steps[0].startswith("SEARCH t USING INDEX object_texts_text"), steps
    assert any(s.startswith("SEARCH o USING INDEX sqlite_autoindex_objects") for s in steps), steps
    assert not any(s.startswith(("SCAN o", "SEARCH o USING INDEX objects_")) for s in steps), steps


def test_a_date_range_with_a_non_date_end_is_invalid_field(kmip: EngineHarness) -> None:
    """Found by fuzzing: the second value of a date range was a Byte String (TypeError)."""
    create(kmip)
    result = kmip.call(
        Operation.LOCATE,
        LocateRequest(
            attributes=[
                Attribute("Initial Date", 1_700_000_000, None, DATE_TIME),
                Attribute("Initial Date", b"\x00" * 8, None, BYTE_STRING),
            ]
        ),
    )
    assert result.result_reason == ResultReason.INVALID_FIELD, result
