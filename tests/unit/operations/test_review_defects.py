"""Defects found in review: concurrent writers, version-correct replies, date-driven state."""

from __future__ import annotations

from typing import Any

import pytest

from kmipd.model.attribute_set import AttributeSet
from kmipd.protocol._generated import (
    CryptographicAlgorithm,
    LinkType,
    ObjectType,
    Operation,
    ResultReason,
    RevocationReasonCode,
    State,
    Tag,
)
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.objects import RevocationReason
from kmipd.protocol.payloads import (
    AddAttributeRequest,
    CreateRequest,
    DeleteAttributeRequest,
    GetAttributesRequest,
    GetRequest,
    ModifyAttributeRequest,
    ReKeyRequest,
    RevokeRequest,
    SetAttributeRequest,
    UidRequest,
)
from kmipd.protocol.ttlv import (
    BOOLEAN,
    DATE_TIME,
    ENUMERATION,
    INTEGER,
    STRUCTURE,
    TEXT_STRING,
    Item,
)
from kmipd.store.records import ObjectQuery
from tests.support.kmip import name_attribute
from tests.unit.operations.conftest import NOW, EngineHarness
from tests.unit.operations.test_operations import (
    FAILED,
    OK,
    attributes,
    create,
    revoke,
    state,
)


def _race_once(kmip: EngineHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next object read is followed at once by another connection's AddAttribute of
    x-Name (as vCenter tags a key while it is being changed elsewhere)."""
    original = kmip.store.get_object
    fired = False

    async def racing(instance: str, uid: str) -> Any:
        nonlocal fired
        record = await original(instance, uid)
        if not fired and record is not None:
            fired = True
            other = await original(instance, uid)
            assert other is not None
            tags = AttributeSet.from_bytes(other.attributes)
            tags.add(Attribute("x-Name", "esx01", None, TEXT_STRING))
            other.attributes = tags.to_bytes()
            assert await kmip.store.update_object(other)
        return record

    monkeypatch.setattr(kmip.store, "get_object", racing)


def _revoke(uid: str) -> tuple[Operation, Any]:
    reason = RevocationReason(code=RevocationReasonCode.CESSATION_OF_OPERATION)
    return Operation.REVOKE, RevokeRequest(unique_identifier=uid, revocation_reason=reason)


@pytest.mark.parametrize(
    "operation",
    ["revoke", "destroy", "set_attribute", "modify_attribute", "delete_attribute"],
)
def test_state_and_attribute_changes_retry_a_concurrent_write(
    kmip: EngineHarness, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    uid = create(kmip, Attribute("Comment", "old", None, TEXT_STRING))
    if operation == "destroy":
        assert revoke(kmip, uid, RevocationReasonCode.CESSATION_OF_OPERATION) == OK
    requests = {
        "revoke": _revoke(uid),
        "destroy": (Operation.DESTROY, UidRequest(unique_identifier=uid)),
        "set_attribute": (
            Operation.SET_ATTRIBUTE,
            SetAttributeRequest(
                unique_identifier=uid, attribute=Attribute("Description", "d", None, TEXT_STRING)
            ),
        ),
        "modify_attribute": (
            Operation.MODIFY_ATTRIBUTE,
            ModifyAttributeRequest(
                unique_identifier=uid, attribute=Attribute("Comment", "new", None, TEXT_STRING)
            ),
        ),
        "delete_attribute": (
            Operation.DELETE_ATTRIBUTE,
            DeleteAttributeRequest(unique_identifier=uid, attribute_name="Comment"),
        ),
    }
    _race_once(kmip, monkeypatch)
    result = kmip.call(*requests[operation])
    assert result.result_status == OK, result.result_message
    # Neither write is lost: the concurrent tag is there, and so is this request's change.
    found = attributes(kmip, uid, "x-Name", "State", "Comment", "Description")
    assert found["x-Name"] == "esx01"
    expected = {
        "revoke": ("State", State.DEACTIVATED),
        "destroy": ("State", State.DESTROYED),
        "set_attribute": ("Description", "d"),
        "modify_attribute": ("Comment", "new"),
        "delete_attribute": ("Comment", None),
    }[operation]
    assert found.get(expected[0]) == expected[1]


def test_1_x_replies_carry_no_2_x_enumeration_values_or_mask_bits(kmip: EngineHarness) -> None:
    wrapping_link = Item(
        Tag.LINK,
        STRUCTURE,
        [
            Item(Tag.LINK_TYPE, ENUMERATION, LinkType.WRAPPING_KEY_LINK),  # 2.0
            Item(Tag.LINKED_OBJECT_IDENTIFIER, TEXT_STRING, "some-key"),
        ],
    )
    created = kmip.call(
        Operation.CREATE,
        CreateRequest(
            object_type=ObjectType.SYMMETRIC_KEY,
            attributes=[
                Attribute("Cryptographic Algorithm", CryptographicAlgorithm.AES, None, ENUMERATION),
                Attribute("Cryptographic Length", 256, None, INTEGER),
                # Encrypt | Decrypt | Authenticate (2.0)
                Attribute("Cryptographic Usage Mask", 12 | 0x00100000, None, INTEGER),
                Attribute("Link", wrapping_link, None, STRUCTURE),
            ],
        ),
    )
    assert created.result_status == OK, created.result_message
    uid = created.payload.unique_identifier
    for version in ((1, 0), (1, 1), (1, 4)):
        result = kmip.call(
            Operation.GET_ATTRIBUTES,
            GetAttributesRequest(unique_identifier=uid, attribute_names=[]),
            version=version,
        )
        assert result.result_status == OK
        found = {a.name: a.value for a in result.payload.attributes}
        assert "Link" not in found, version
        assert found["Cryptographic Usage Mask"] == 12, version
    # A 2.x client still sees everything it stored.
    found = attributes(kmip, uid, "Link", "Cryptographic Usage Mask")
    assert found["Cryptographic Usage Mask"] == 12 | 0x00100000
    assert found["Link"].find(Tag.LINK_TYPE).value == LinkType.WRAPPING_KEY_LINK


def test_date_driven_transition_is_written_to_the_store(kmip: EngineHarness) -> None:
    uid = create(kmip, Attribute("Activation Date", NOW + 60, None, DATE_TIME))
    kmip.advance(61)
    assert state(kmip, uid) == State.ACTIVE
    # The inventory (HTTPS API, Key Protect API) reads the stored row: it must agree.
    record = kmip.loop.run_until_complete(kmip.store.get_object("default", uid))
    assert record is not None and record.state == State.ACTIVE


# --- ReKey -------------------------------------------------------------------------------------


def _objects(kmip: EngineHarness) -> list[str]:
    records = kmip.loop.run_until_complete(kmip.store.find_objects(ObjectQuery("default")))
    return [r.uid for r in records]


def test_rekey_retries_a_concurrent_write_to_the_old_key(
    kmip: EngineHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = create(kmip, name_attribute("kek"))
    _race_once(kmip, monkeypatch)
    result = kmip.call(Operation.RE_KEY, ReKeyRequest(unique_identifier=old))
    assert result.result_status == OK, result.result_message
    new = result.payload.unique_identifier
    old_attrs = attributes(kmip, old, "Link", "Name", "x-Name")
    assert old_attrs["x-Name"] == "esx01"
    assert "Name" not in old_attrs
    assert old_attrs["Link"].find(Tag.LINKED_OBJECT_IDENTIFIER).value == new
    assert sorted(_objects(kmip)) == sorted((old, new))


def test_rekey_that_fails_leaves_no_new_key_behind(
    kmip: EngineHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = create(kmip, name_attribute("kek"))
    # Every write to the old key loses its compare-and-swap (a writer that never stops).
    original = kmip.store.update_object

    async def always_lost(record: Any) -> bool:
        return False if record.uid == old else await original(record)

    monkeypatch.setattr(kmip.store, "update_object", always_lost)
    result = kmip.call(Operation.RE_KEY, ReKeyRequest(unique_identifier=old))
    assert result.result_status == FAILED
    monkeypatch.undo()
    assert _objects(kmip) == [old]
    assert attributes(kmip, old, "Name")["Name"].find(Tag.NAME_VALUE).value == "kek"


def test_rekey_of_a_compromised_key_does_not_mark_the_new_key_compromised(
    kmip: EngineHarness,
) -> None:
    old = create(kmip)
    assert revoke(kmip, old, RevocationReasonCode.KEY_COMPROMISE) == OK
    result = kmip.call(Operation.RE_KEY, ReKeyRequest(unique_identifier=old))
    assert result.result_status == OK, result.result_message
    found = attributes(kmip, result.payload.unique_identifier)
    assert "Compromise Occurrence Date" not in found
    assert found["State"] == State.PRE_ACTIVE


def test_rekey_refuses_a_name_another_key_has(kmip: EngineHarness) -> None:
    create(kmip, name_attribute("taken"))
    old = create(kmip)
    result = kmip.call(
        Operation.RE_KEY, ReKeyRequest(unique_identifier=old, attributes=[name_attribute("taken")])
    )
    assert result.result_reason == ResultReason.NON_UNIQUE_NAME_ATTRIBUTE
    assert len(_objects(kmip)) == 2


def test_add_attribute_of_a_date_follows_the_state_rules(kmip: EngineHarness) -> None:
    uid = create(kmip)
    added = kmip.call(
        Operation.ADD_ATTRIBUTE,
        AddAttributeRequest(
            unique_identifier=uid, attribute=Attribute("Activation Date", NOW - 1, None, DATE_TIME)
        ),
    )
    assert added.result_status == OK, added.result_message
    # The date has passed: the stored row is Active at once, as KMIP answers.
    record = kmip.loop.run_until_complete(kmip.store.get_object("default", uid))
    assert record is not None and record.state == State.ACTIVE
    # An Activation Date is for Pre-Active objects only, as with Set/ModifyAttribute.
    other = create(kmip)
    assert revoke(kmip, other, RevocationReasonCode.KEY_COMPROMISE) == OK
    refused = kmip.call(
        Operation.ADD_ATTRIBUTE,
        AddAttributeRequest(
            unique_identifier=other,
            attribute=Attribute("Activation Date", NOW + 10, None, DATE_TIME),
        ),
    )
    assert refused.result_reason == ResultReason.WRONG_KEY_LIFECYCLE_STATE


def test_always_sensitive_and_never_extractable_are_cleared_for_good(kmip: EngineHarness) -> None:
    uid = create(
        kmip,
        Attribute("Sensitive", True, None, BOOLEAN),
        Attribute("Extractable", False, None, BOOLEAN),
    )
    found = attributes(kmip, uid, "Always Sensitive", "Never Extractable")
    assert found == {"Always Sensitive": True, "Never Extractable": True}
    for attribute, value in (("Sensitive", False), ("Extractable", True)):
        result = kmip.call(
            Operation.SET_ATTRIBUTE,
            SetAttributeRequest(
                unique_identifier=uid, attribute=Attribute(attribute, value, None, BOOLEAN)
            ),
        )
        assert result.result_status == OK, result.result_message
    # The material can now be fetched: it is no longer "always" sensitive or "never"
    # extractable, even if the flags are set back afterwards.
    assert kmip.call(Operation.GET, GetRequest(unique_identifier=uid)).result_status == OK
    for attribute, value in (("Sensitive", True), ("Extractable", False)):
        kmip.call(
            Operation.SET_ATTRIBUTE,
            SetAttributeRequest(
                unique_identifier=uid, attribute=Attribute(attribute, value, None, BOOLEAN)
            ),
        )
    found = attributes(kmip, uid, "Always Sensitive", "Never Extractable")
    assert found == {"Always Sensitive": False, "Never Extractable": False}
