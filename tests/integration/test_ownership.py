"""T6/T2: instance B can neither read, change nor detect instance A's objects.

For every operation that names a UID, B gets for A's UID exactly what it gets for a random
UID that does not exist (same status, reason, message and response size), and A's object
is unchanged afterwards. Locate by B never lists A's objects. A sealed body copied into
another row (another instance's, or another UID of the same instance) does not open.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kmipd.operations import REGISTRY
from kmipd.protocol import messages
from kmipd.protocol._generated import (
    ObjectType,
    Operation,
    ResultReason,
    ResultStatus,
    RevocationReasonCode,
    State,
)
from kmipd.protocol.attributes import Attribute
from kmipd.protocol.crypto_payloads import (
    DecryptRequest,
    EncryptRequest,
    MacRequest,
    MacVerifyRequest,
    SignatureVerifyRequest,
    SignRequest,
)
from kmipd.protocol.objects import RevocationReason
from kmipd.protocol.payloads import (
    AddAttributeRequest,
    CheckRequest,
    DeleteAttributeRequest,
    GetAttributeListRequest,
    GetAttributesRequest,
    GetRequest,
    LocateRequest,
    ModifyAttributeRequest,
    ReKeyRequest,
    RevokeRequest,
    SetAttributeRequest,
    UidRequest,
)
from kmipd.protocol.ttlv import ENUMERATION, TEXT_STRING
from tests.support import kmip
from tests.support.server import KmipdServer, init_server

# Operation -> (protocol version, payload for a UID).
PROBES: dict[Operation, tuple[tuple[int, int], Callable[[str], Any]]] = {
    Operation.GET: ((1, 4), lambda uid: GetRequest(unique_identifier=uid)),
    Operation.GET_ATTRIBUTES: ((1, 4), lambda uid: GetAttributesRequest(unique_identifier=uid)),
    Operation.GET_ATTRIBUTE_LIST: (
        (1, 4),
        lambda uid: GetAttributeListRequest(unique_identifier=uid),
    ),
    Operation.ADD_ATTRIBUTE: (
        (1, 4),
        lambda uid: AddAttributeRequest(
            unique_identifier=uid, attribute=Attribute("x-Owner", "B", None, TEXT_STRING)
        ),
    ),
    Operation.MODIFY_ATTRIBUTE: (
        (1, 4),
        lambda uid: ModifyAttributeRequest(
            unique_identifier=uid, attribute=Attribute("x-Owner", "B", 0, TEXT_STRING)
        ),
    ),
    Operation.DELETE_ATTRIBUTE: (
        (1, 4),
        lambda uid: DeleteAttributeRequest(
            unique_identifier=uid, attribute_name="x-Owner", attribute_index=0
        ),
    ),
    Operation.SET_ATTRIBUTE: (
        (2, 0),
        lambda uid: SetAttributeRequest(
            unique_identifier=uid, attribute=Attribute("Comment", "B", None, TEXT_STRING)
        ),
    ),
    Operation.ACTIVATE: ((1, 4), lambda uid: UidRequest(unique_identifier=uid)),
    Operation.REVOKE: (
        (1, 4),
        lambda uid: RevokeRequest(
            unique_identifier=uid,
            revocation_reason=RevocationReason(code=RevocationReasonCode.KEY_COMPROMISE),
        ),
    ),
    Operation.DESTROY: ((1, 4), lambda uid: UidRequest(unique_identifier=uid)),
    Operation.CHECK: ((1, 4), lambda uid: CheckRequest(unique_identifier=uid)),
    Operation.RE_KEY: ((1, 4), lambda uid: ReKeyRequest(unique_identifier=uid)),
    Operation.ENCRYPT: ((1, 4), lambda uid: EncryptRequest(unique_identifier=uid, data=b"B")),
    Operation.DECRYPT: ((2, 1), lambda uid: DecryptRequest(unique_identifier=uid, data=b"B")),
    Operation.SIGN: ((1, 4), lambda uid: SignRequest(unique_identifier=uid, data=b"B")),
    Operation.SIGNATURE_VERIFY: (
        (2, 1),
        lambda uid: SignatureVerifyRequest(unique_identifier=uid, data=b"B", signature_data=b"B"),
    ),
    Operation.MAC: ((1, 4), lambda uid: MacRequest(unique_identifier=uid, data=b"B")),
    Operation.MAC_VERIFY: (
        (2, 1),
        lambda uid: MacVerifyRequest(unique_identifier=uid, data=b"B", mac_data=b"B"),
    ),
}

PRESENT = [operation for operation in PROBES if operation in REGISTRY]
ABSENT = [operation.name for operation in PROBES if operation not in REGISTRY]


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    server = init_server(Path(tmp_path_factory.mktemp("ownership")) / "data")
    server.add_instance("A")
    server.add_instance("B")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def create(server: KmipdServer, instance: str) -> tuple[str, bytes]:
    with server.connect(instance) as connection:
        uid = kmip.created_uid(connection.call(kmip.create_aes()))
        return uid, kmip.key_material(connection.call(kmip.get(uid)))


def outcome(response: bytes) -> tuple[Any, ...]:
    """What a client can see of a failure: everything but the time stamp."""
    decoded = messages.decode_response(response)
    return (
        len(response),
        decoded.version,
        [
            (
                item.operation,
                item.result_status,
                item.result_reason,
                item.result_message,
                item.payload,
            )
            for item in decoded.batch_items
        ],
    )


def test_all_uid_operations_are_probed() -> None:
    """Every operation the server has that takes a UID is in PROBES (new ones get added)."""
    takes_uid = {
        operation
        for operation in REGISTRY
        if operation
        not in (
            Operation.DISCOVER_VERSIONS,
            Operation.QUERY,
            Operation.CREATE,
            Operation.REGISTER,
            Operation.LOCATE,
            Operation.INTEROP,
            Operation.LOG,
            Operation.CREATE_KEY_PAIR,
            Operation.HASH,
            Operation.RNG_RETRIEVE,
        )
    }
    assert takes_uid <= set(PROBES), takes_uid - set(PROBES)
    print(f"[measure] ownership probes: {[o.name for o in PRESENT]}; not implemented: {ABSENT}")


@pytest.mark.parametrize("operation", PRESENT, ids=[o.name for o in PRESENT])
def test_foreign_uid_is_indistinguishable_from_a_missing_one(
    tenants: KmipdServer, operation: Operation
) -> None:
    uid, material = create(tenants, "A")
    version, payload = PROBES[operation]
    with tenants.connect("B") as b:
        foreign = b.call(kmip.request(operation, payload(uid), version))
        missing = b.call(kmip.request(operation, payload(str(uuid.uuid4())), version))
    seen = outcome(foreign)
    assert seen == outcome(missing)
    item = kmip.item(foreign)
    assert item.result_status == ResultStatus.OPERATION_FAILED
    # KMIP 2.x reports Object Not Found, 1.x Item Not Found.
    not_found = ResultReason.OBJECT_NOT_FOUND if version >= (2, 0) else ResultReason.ITEM_NOT_FOUND
    assert item.result_reason == not_found
    assert material not in foreign and material.hex().encode() not in foreign
    # A's object did not change: same bytes, still Pre-Active, no attribute from B.
    with tenants.connect("A") as a:
        assert kmip.key_material(a.call(kmip.get(uid))) == material
        attributes = kmip.ok(
            a.call(
                kmip.request(Operation.GET_ATTRIBUTES, GetAttributesRequest(unique_identifier=uid))
            )
        )
    values = {attribute.name: attribute.value for attribute in attributes.attributes}
    assert values["State"] == State.PRE_ACTIVE
    assert "x-Owner" not in values and "Comment" not in values


@pytest.mark.skipif(Operation.LOCATE not in REGISTRY, reason="Locate is not implemented yet")
def test_locate_never_lists_another_instances_objects(tenants: KmipdServer) -> None:
    a_uids = {create(tenants, "A")[0] for _ in range(3)}
    b_uids = {create(tenants, "B")[0] for _ in range(2)}
    filters: list[list[Attribute]] = [
        [],
        [Attribute("Object Type", ObjectType.SYMMETRIC_KEY, None, ENUMERATION)],
        [Attribute("Cryptographic Algorithm", kmip.AES, None, ENUMERATION)],
        [Attribute("Unique Identifier", next(iter(a_uids)), None, TEXT_STRING)],
    ]
    with tenants.connect("B") as b:
        for attributes in filters:
            found = kmip.ok(
                b.call(kmip.request(Operation.LOCATE, LocateRequest(attributes=attributes)))
            )
            listed = set(found.unique_identifiers)
            assert not listed & a_uids, attributes
            if not attributes or attributes[0].name != "Unique Identifier":
                assert b_uids <= listed
            else:
                assert not listed


def _sealed(database: Path, uid: str) -> bytes:
    with sqlite3.connect(database, timeout=10) as db:
        row = db.execute("SELECT sealed FROM objects WHERE uid = ?", (uid,)).fetchone()
    assert row is not None and isinstance(row[0], bytes)
    return bytes(row[0])


def _set_sealed(database: Path, uid: str, sealed: bytes) -> None:
    db = sqlite3.connect(database, timeout=10)
    try:
        with db:
            assert (
                db.execute("UPDATE objects SET sealed = ? WHERE uid = ?", (sealed, uid)).rowcount
                == 1
            )
    finally:
        db.close()


@pytest.mark.parametrize("target", ["B", "A"], ids=["into-other-instance", "into-other-uid"])
def test_a_sealed_body_moved_to_another_row_does_not_open(
    tenants: KmipdServer, target: str
) -> None:
    database = tenants.database
    a_uid, a_material = create(tenants, "A")
    t_uid, t_material = create(tenants, target)
    original = _sealed(database, t_uid)
    _set_sealed(database, t_uid, _sealed(database, a_uid))
    try:
        with tenants.connect(target) as connection:
            response = connection.call(kmip.get(t_uid))
        item = kmip.item(response)
        assert item.result_status == ResultStatus.OPERATION_FAILED
        assert item.result_reason in (
            ResultReason.CRYPTOGRAPHIC_FAILURE,
            ResultReason.ITEM_NOT_FOUND,
            ResultReason.OBJECT_NOT_FOUND,
        ), item
        for material in (a_material, t_material):
            assert material not in response and material.hex().encode() not in response
        message = item.result_message or ""
        assert "Traceback" not in message and "sqlite" not in message.lower()
    finally:
        _set_sealed(database, t_uid, original)
    # Put back, it opens again: the failure was the move, nothing else.
    with tenants.connect(target) as connection:
        assert kmip.key_material(connection.call(kmip.get(t_uid))) == t_material
