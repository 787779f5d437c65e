"""Locate by an x- attribute or a Name: the store narrows the candidates to objects whose
stored attributes hold the text (a superset), and the exact match decides. A value that
only contains the one asked for ("vm-10" for "vm-1"), one set after the key was made, one
changed away, or one of another instance is never returned wrongly; Unicode works."""

from __future__ import annotations

from kmipd.protocol._generated import Operation, ResultReason
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.payloads import AddAttributeRequest, LocateRequest, ModifyAttributeRequest
from kmipd.protocol.ttlv import BYTE_STRING, DATE_TIME, TEXT_STRING
from kmipd.store.records import ObjectQuery
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


def test_the_store_filter_is_a_superset_on_both_engines(kmip: EngineHarness) -> None:
    for value in ("vm-1", "vm-10", "other"):
        create(kmip, x_name(value))
    rows = kmip.loop.run_until_complete(
        kmip.store.find_objects(ObjectQuery("default", contains=(b"vm-1",)))
    )
    assert len(rows) == 2  # vm-1 and vm-10: the exact match is Locate's job
    none = kmip.loop.run_until_complete(
        kmip.store.find_objects(ObjectQuery("default", contains=(b"vm-1", b"absent")))
    )
    assert none == []


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
