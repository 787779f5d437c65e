"""Edge cases of the operations, through the engine in process (see conftest.py)."""

from __future__ import annotations

from kmipd.protocol._generated import (
    BatchErrorContinuationOption,
    CryptographicAlgorithm,
    KeyFormatType,
    LinkType,
    ObjectType,
    Operation,
    ResultReason,
    ResultStatus,
    RevocationReasonCode,
    SecretDataType,
    State,
    Tag,
)
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import KeyBlock, KeyValue, RevocationReason, SecretData, SymmetricKey
from kmipd.protocol.payloads import (
    CheckRequest,
    CreateRequest,
    DeleteAttributeRequest,
    GetAttributeListRequest,
    GetAttributesRequest,
    GetRequest,
    LocateRequest,
    ModifyAttributeRequest,
    RegisterRequest,
    ReKeyRequest,
    RevokeRequest,
    SetAttributeRequest,
    UidRequest,
)
from kmipd.protocol.ttlv import DATE_TIME, ENUMERATION, INTEGER, TEXT_STRING
from tests.support.kmip import name_attribute
from tests.unit.operations.conftest import NOW, EngineHarness

A = CryptographicAlgorithm
OK = ResultStatus.SUCCESS
FAILED = ResultStatus.OPERATION_FAILED


def aes(*extra: Attribute, length: int = 256) -> list[Attribute]:
    return [
        Attribute("Cryptographic Algorithm", A.AES, None, ENUMERATION),
        Attribute("Cryptographic Length", length, None, INTEGER),
        Attribute("Cryptographic Usage Mask", 12, None, INTEGER),  # Encrypt | Decrypt
        *extra,
    ]


def create(kmip: EngineHarness, *extra: Attribute, **kwargs: object) -> str:
    version = kwargs.get("version", (2, 1))
    request = (
        CreateRequest(object_type=ObjectType.SYMMETRIC_KEY, attributes=aes(*extra))
        if version >= (2, 0)  # type: ignore[operator]
        else CreateRequest(
            object_type=ObjectType.SYMMETRIC_KEY,
            template_attribute=TemplateAttribute(names=[], attributes=aes(*extra)),
        )
    )
    result = kmip.call(Operation.CREATE, request, **kwargs)  # type: ignore[arg-type]
    assert result.result_status == OK, result.result_message
    return str(result.payload.unique_identifier)


def attributes(kmip: EngineHarness, uid: str, *names: str) -> dict[str, object]:
    result = kmip.call(
        Operation.GET_ATTRIBUTES,
        GetAttributesRequest(unique_identifier=uid, attribute_names=list(names)),
    )
    assert result.result_status == OK, result.result_message
    return {a.name: a.value for a in result.payload.attributes}


def state(kmip: EngineHarness, uid: str) -> State:
    return State(attributes(kmip, uid, "State")["State"])


def revoke(kmip: EngineHarness, uid: str, code: RevocationReasonCode) -> int:
    result = kmip.call(
        Operation.REVOKE,
        RevokeRequest(unique_identifier=uid, revocation_reason=RevocationReason(code=code)),
    )
    return int(result.result_status)


# --- Register ---------------------------------------------------------------------------------


def _raw_aes(material: bytes, length: int) -> SymmetricKey:
    return SymmetricKey(
        key_block=KeyBlock(
            key_format_type=KeyFormatType.RAW,
            key_value=KeyValue(key_material=material, attributes=[]),
            cryptographic_algorithm=A.AES,
            cryptographic_length=length,
        )
    )


def test_register_refuses_material_shorter_than_its_length(kmip: EngineHarness) -> None:
    result = kmip.call(
        Operation.REGISTER,
        RegisterRequest(
            object_type=ObjectType.SYMMETRIC_KEY,
            attributes=aes(),
            managed_object=_raw_aes(bytes(16), 256),
        ),
    )
    assert result.result_status == FAILED
    assert result.result_reason == ResultReason.INVALID_FIELD
    assert "00" * 16 not in (result.result_message or "")


def test_register_refuses_object_type_mismatch(kmip: EngineHarness) -> None:
    result = kmip.call(
        Operation.REGISTER,
        RegisterRequest(
            object_type=ObjectType.SECRET_DATA,
            attributes=[],
            managed_object=_raw_aes(bytes(32), 256),
        ),
    )
    assert result.result_reason == ResultReason.INVALID_OBJECT_TYPE


def test_register_takes_algorithm_from_key_block_and_returns_material(kmip: EngineHarness) -> None:
    material = bytes(range(32))
    result = kmip.call(
        Operation.REGISTER,
        RegisterRequest(
            object_type=ObjectType.SYMMETRIC_KEY,
            attributes=[],
            managed_object=_raw_aes(material, 256),
        ),
    )
    assert result.result_status == OK
    uid = result.payload.unique_identifier
    found = attributes(kmip, uid, "Cryptographic Algorithm", "Cryptographic Length", "Digest")
    assert found["Cryptographic Algorithm"] == A.AES
    assert found["Cryptographic Length"] == 256
    assert "Digest" in found
    got = kmip.call(Operation.GET, GetRequest(unique_identifier=uid))
    assert got.payload.managed_object.key_block.key_value.key_material == material


def test_register_secret_data_in_1_x(kmip: EngineHarness) -> None:
    secret = SecretData(
        secret_data_type=SecretDataType.PASSWORD,
        key_block=KeyBlock(
            key_format_type=KeyFormatType.OPAQUE,
            key_value=KeyValue(key_material=b"pw", attributes=[]),
        ),
    )
    result = kmip.call(
        Operation.REGISTER,
        RegisterRequest(
            object_type=ObjectType.SECRET_DATA,
            template_attribute=TemplateAttribute(names=[], attributes=[]),
            managed_object=secret,
        ),
        version=(1, 1),
    )
    assert result.result_status == OK, result.result_message


# --- Lifecycle: Revoke, Destroy, dates -------------------------------------------------------


def test_destroy_active_key_is_refused_per_version(kmip: EngineHarness) -> None:
    for version, reason in (
        ((2, 1), ResultReason.WRONG_KEY_LIFECYCLE_STATE),
        ((1, 1), ResultReason.PERMISSION_DENIED),
    ):
        uid = create(kmip, version=version)
        assert (
            kmip.call(
                Operation.ACTIVATE, UidRequest(unique_identifier=uid), version=version
            ).result_status
            == OK
        )
        result = kmip.call(Operation.DESTROY, UidRequest(unique_identifier=uid), version=version)
        assert (result.result_status, result.result_reason) == (FAILED, reason)


def test_revoke_then_destroy_keeps_metadata_drops_material(kmip: EngineHarness) -> None:
    uid = create(kmip)
    kmip.call(Operation.ACTIVATE, UidRequest(unique_identifier=uid))
    assert revoke(kmip, uid, RevocationReasonCode.CESSATION_OF_OPERATION) == OK
    assert state(kmip, uid) == State.DEACTIVATED
    assert kmip.call(Operation.DESTROY, UidRequest(unique_identifier=uid)).result_status == OK
    found = attributes(kmip, uid, "State", "Destroy Date", "Revocation Reason")
    assert found["State"] == State.DESTROYED
    assert found["Destroy Date"] == kmip.now
    got = kmip.call(Operation.GET, GetRequest(unique_identifier=uid))
    assert got.result_reason == ResultReason.OBJECT_DESTROYED
    record = kmip.loop.run_until_complete(kmip.store.get_object("default", uid))
    assert record is not None and record.sealed is None


def test_compromise_sets_dates_and_state(kmip: EngineHarness) -> None:
    uid = create(kmip)
    assert revoke(kmip, uid, RevocationReasonCode.KEY_COMPROMISE) == OK
    found = attributes(kmip, uid, "State", "Compromise Date", "Compromise Occurrence Date")
    assert found == {
        "State": State.COMPROMISED,
        "Compromise Date": kmip.now,
        "Compromise Occurrence Date": kmip.now,
    }
    destroyed = kmip.call(Operation.DESTROY, UidRequest(unique_identifier=uid))
    assert destroyed.result_status == OK
    assert state(kmip, uid) == State.DESTROYED_COMPROMISED


def test_activation_date_reached_activates_and_cannot_be_moved_then(kmip: EngineHarness) -> None:
    uid = create(kmip, Attribute("Activation Date", NOW + 60, None, DATE_TIME))
    assert state(kmip, uid) == State.PRE_ACTIVE
    kmip.advance(61)
    assert state(kmip, uid) == State.ACTIVE
    moved = kmip.call(
        Operation.MODIFY_ATTRIBUTE,
        ModifyAttributeRequest(
            unique_identifier=uid,
            attribute=Attribute("Activation Date", kmip.now + 10, None, DATE_TIME),
        ),
    )
    assert moved.result_reason == ResultReason.WRONG_KEY_LIFECYCLE_STATE


# --- Attributes --------------------------------------------------------------------------------


def test_1_x_attribute_indices(kmip: EngineHarness) -> None:
    uid = create(kmip, version=(1, 1))
    for value in ("a", "b", "c"):
        kmip.call(
            Operation.ADD_ATTRIBUTE,
            __import__(
                "kmipd.protocol.payloads", fromlist=["AddAttributeRequest"]
            ).AddAttributeRequest(
                unique_identifier=uid, attribute=Attribute("x-tag", value, None, TEXT_STRING)
            ),
            version=(1, 1),
        )
    modified = kmip.call(
        Operation.MODIFY_ATTRIBUTE,
        ModifyAttributeRequest(
            unique_identifier=uid, attribute=Attribute("x-tag", "B", 1, TEXT_STRING)
        ),
        version=(1, 1),
    )
    assert modified.result_status == OK
    deleted = kmip.call(
        Operation.DELETE_ATTRIBUTE,
        DeleteAttributeRequest(unique_identifier=uid, attribute_name="x-tag", attribute_index=0),
        version=(1, 1),
    )
    assert deleted.payload.attribute.value == "a"
    result = kmip.call(
        Operation.GET_ATTRIBUTES,
        GetAttributesRequest(unique_identifier=uid, attribute_names=["x-tag"]),
        version=(1, 1),
    )
    assert [(a.index, a.value) for a in result.payload.attributes] == [(0, "B"), (1, "c")]
    missing = kmip.call(
        Operation.DELETE_ATTRIBUTE,
        DeleteAttributeRequest(unique_identifier=uid, attribute_name="x-tag", attribute_index=5),
        version=(1, 1),
    )
    assert missing.result_status == FAILED


def test_2_x_current_attribute_and_set_attribute(kmip: EngineHarness) -> None:
    uid = create(
        kmip,
        Attribute("x-tag", "one", None, TEXT_STRING),
        Attribute("x-tag", "two", None, TEXT_STRING),
    )
    modified = kmip.call(
        Operation.MODIFY_ATTRIBUTE,
        ModifyAttributeRequest(
            unique_identifier=uid,
            current_attribute=Attribute("x-tag", "two", None, TEXT_STRING),
            attribute=Attribute("x-tag", "TWO", None, TEXT_STRING),
        ),
    )
    assert modified.result_status == OK
    wrong = kmip.call(
        Operation.MODIFY_ATTRIBUTE,
        ModifyAttributeRequest(
            unique_identifier=uid,
            current_attribute=Attribute("x-tag", "absent", None, TEXT_STRING),
            attribute=Attribute("x-tag", "x", None, TEXT_STRING),
        ),
    )
    assert wrong.result_reason == ResultReason.ATTRIBUTE_INSTANCE_NOT_FOUND
    multi = kmip.call(
        Operation.SET_ATTRIBUTE,
        SetAttributeRequest(
            unique_identifier=uid, attribute=Attribute("x-tag", "z", None, TEXT_STRING)
        ),
    )
    assert multi.result_reason == ResultReason.MULTI_VALUED_ATTRIBUTE
    read_only = kmip.call(
        Operation.SET_ATTRIBUTE,
        SetAttributeRequest(
            unique_identifier=uid, attribute=Attribute("Initial Date", 0, None, DATE_TIME)
        ),
    )
    assert read_only.result_reason == ResultReason.ATTRIBUTE_READ_ONLY
    described = kmip.call(
        Operation.SET_ATTRIBUTE,
        SetAttributeRequest(
            unique_identifier=uid, attribute=Attribute("Description", "disk 7", None, TEXT_STRING)
        ),
    )
    assert described.result_status == OK
    result = kmip.call(
        Operation.GET_ATTRIBUTES,
        GetAttributesRequest(unique_identifier=uid, attribute_names=["Description", "x-tag"]),
    )
    assert [(a.name, a.value) for a in result.payload.attributes] == [
        ("Description", "disk 7"),
        ("x-tag", "one"),
        ("x-tag", "TWO"),
    ]


def test_names_are_unique_within_an_instance_only(kmip: EngineHarness) -> None:
    create(kmip, name_attribute("disk-1"))
    again = kmip.call(
        Operation.CREATE,
        CreateRequest(
            object_type=ObjectType.SYMMETRIC_KEY, attributes=aes(name_attribute("disk-1"))
        ),
    )
    assert again.result_reason == ResultReason.NON_UNIQUE_NAME_ATTRIBUTE
    kmip.add_instance("other")
    create(kmip, name_attribute("disk-1"), instance="other")


def test_attribute_list_hides_attributes_the_version_does_not_know(kmip: EngineHarness) -> None:
    uid = create(kmip)
    v10 = kmip.call(
        Operation.GET_ATTRIBUTE_LIST, GetAttributeListRequest(unique_identifier=uid), version=(1, 0)
    )
    v21 = kmip.call(Operation.GET_ATTRIBUTE_LIST, GetAttributeListRequest(unique_identifier=uid))
    assert "Sensitive" not in v10.payload.attribute_names
    assert "Fresh" not in v10.payload.attribute_names
    assert {"Sensitive", "Fresh", "Short Unique Identifier"} <= set(v21.payload.attribute_names)


# --- Locate ------------------------------------------------------------------------------------


def test_locate_filters_paging_and_instances(kmip: EngineHarness) -> None:
    first = create(kmip, Attribute("x-Component", "vm-1", None, TEXT_STRING))
    kmip.advance(10)
    second = create(kmip, Attribute("x-Component", "vm-1", None, TEXT_STRING))
    kmip.advance(10)
    create(kmip, Attribute("x-Component", "vm-2", None, TEXT_STRING))
    kmip.add_instance("other")
    create(kmip, Attribute("x-Component", "vm-1", None, TEXT_STRING), instance="other")

    def locate(*attrs: Attribute, version: tuple[int, int] = (2, 1), **kwargs: object) -> object:
        result = kmip.call(
            Operation.LOCATE,
            LocateRequest(attributes=list(attrs), **kwargs),
            version=version,  # type: ignore[arg-type]
        )
        assert result.result_status == OK, result.result_message
        return result.payload

    component = Attribute("x-Component", "vm-1", None, TEXT_STRING)
    found = locate(component)
    assert found.unique_identifiers == [second, first]  # newest first, own instance only
    paged = locate(component, maximum_items=1, offset_items=1)
    assert (paged.unique_identifiers, paged.located_items) == ([first], 2)
    older = locate(
        component,
        Attribute("Initial Date", NOW - 1, None, DATE_TIME),
        Attribute("Initial Date", NOW + 5, None, DATE_TIME),
    )
    assert older.unique_identifiers == [first]
    by_mask = locate(Attribute("Cryptographic Usage Mask", 4, None, INTEGER))  # Encrypt
    assert len(by_mask.unique_identifiers) == 3
    assert (
        locate(
            Attribute("Object Type", ObjectType.SECRET_DATA, None, ENUMERATION)
        ).unique_identifiers
        == []
    )
    # 1.2 has no Located Items
    assert locate(component, version=(1, 2), maximum_items=1).located_items is None


def test_locate_skips_destroyed_unless_asked(kmip: EngineHarness) -> None:
    uid = create(kmip)
    kmip.call(Operation.DESTROY, UidRequest(unique_identifier=uid))
    plain = kmip.call(Operation.LOCATE, LocateRequest())
    assert plain.payload.unique_identifiers == []
    destroyed = kmip.call(Operation.LOCATE, LocateRequest(storage_status_mask=4))
    assert destroyed.payload.unique_identifiers == [uid]


# --- ReKey, Check, Undo ------------------------------------------------------------------------


def test_rekey_links_moves_name_and_offsets(kmip: EngineHarness) -> None:
    old = create(kmip, name_attribute("kek"), Attribute("x-Component", "vm-1", None, TEXT_STRING))
    kmip.call(Operation.ACTIVATE, UidRequest(unique_identifier=old))
    result = kmip.call(Operation.RE_KEY, ReKeyRequest(unique_identifier=old, offset=3600))
    assert result.result_status == OK, result.result_message
    new = result.payload.unique_identifier
    assert new != old
    new_attrs = attributes(kmip, new, "Link", "Name", "x-Component", "Activation Date", "State")
    assert new_attrs["x-Component"] == "vm-1"
    assert new_attrs["Activation Date"] == kmip.now + 3600
    assert new_attrs["State"] == State.PRE_ACTIVE
    link = new_attrs["Link"]
    assert link.find(Tag.LINK_TYPE).value == LinkType.REPLACED_OBJECT_LINK
    assert link.find(Tag.LINKED_OBJECT_IDENTIFIER).value == old
    old_attrs = attributes(kmip, old, "Link", "Name")
    assert "Name" not in old_attrs
    assert old_attrs["Link"].find(Tag.LINKED_OBJECT_IDENTIFIER).value == new
    # The old key stays retrievable.
    assert kmip.call(Operation.GET, GetRequest(unique_identifier=old)).result_status == OK


def test_check_usage_mask(kmip: EngineHarness) -> None:
    uid = create(kmip)
    assert (
        kmip.call(
            Operation.CHECK, CheckRequest(unique_identifier=uid, cryptographic_usage_mask=4)
        ).result_status
        == OK
    )
    refused = kmip.call(
        Operation.CHECK, CheckRequest(unique_identifier=uid, cryptographic_usage_mask=1)
    )
    assert refused.result_reason == ResultReason.INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK


def test_undo_rolls_back_earlier_items(kmip: EngineHarness) -> None:
    uid = create(kmip)
    results = kmip.batch(
        (Operation.ACTIVATE, UidRequest(unique_identifier=uid)),
        (Operation.CREATE, CreateRequest(object_type=ObjectType.SYMMETRIC_KEY, attributes=aes())),
        (Operation.CHECK, CheckRequest(unique_identifier=uid, cryptographic_usage_mask=1)),
        option=BatchErrorContinuationOption.UNDO,
    )
    assert [r.result_status for r in results] == [
        ResultStatus.OPERATION_UNDONE,
        ResultStatus.OPERATION_UNDONE,
        FAILED,
    ]
    assert state(kmip, uid) == State.PRE_ACTIVE
    created = results[1].payload.unique_identifier
    gone = kmip.call(Operation.GET, GetRequest(unique_identifier=created))
    assert gone.result_reason == ResultReason.OBJECT_NOT_FOUND


def test_other_instances_objects_are_not_found(kmip: EngineHarness) -> None:
    uid = create(kmip)
    kmip.add_instance("other")
    for operation, payload in (
        (Operation.GET, GetRequest(unique_identifier=uid)),
        (Operation.DESTROY, UidRequest(unique_identifier=uid)),
        (Operation.RE_KEY, ReKeyRequest(unique_identifier=uid)),
        (Operation.GET_ATTRIBUTE_LIST, GetAttributeListRequest(unique_identifier=uid)),
    ):
        result = kmip.call(operation, payload, instance="other")
        assert result.result_reason == ResultReason.OBJECT_NOT_FOUND
    assert state(kmip, uid) == State.PRE_ACTIVE
