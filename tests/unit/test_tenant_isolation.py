"""T6: tenant isolation as a Hypothesis state machine (issue 7, item 6).

Two instances, A and B, each client acting only as itself, drive every KMIP operation the
engine has (Create, Register, Get, Get Attributes, Get Attribute List, Add/Modify/Delete/Set
Attribute, Activate, Revoke, Destroy, Check, ReKey, Locate with every filter and with none,
batches mixing own, foreign, random and placeholder UIDs under every Batch Error Continuation
Option) and the key inventory (``AdminService.keys``/``key``/``destroy_key``), on UIDs of
their own, of the other instance, and random or hostile ones that never existed.

Invariants, checked on every step:

(a) nothing of the other instance reaches the actor: no response (payload, message, inventory
    row) carries a UID of the other instance that the request did not name, nor key material
    of the other instance; Locate and the inventory list only the actor's own objects, and
    Locate with no filter lists exactly the actor's live objects;
(b) an operation on a foreign UID gives exactly the answer (status, reason, message with the
    UID text itself normalised, payload) that the same operation on a random UID gives, alone
    or inside a batch;
(c) nothing the actor does changes any object of the other instance: the other instance's
    rows in the store (state, attributes, sealed body, revision, dates) are compared before
    and after each step; and the store holds exactly the objects the model says each
    instance created (so an undone batch leaves nothing behind, and no object lands in the
    wrong instance).

One engine and one SQLite store serve every example; each example gets instance names of
its own, so it starts from empty instances without the cost of a new database. The step
count is printed and must reach 10,000 in the default (CI) profile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from kmipd import config
from kmipd.keys.instance_keys import InstanceKeys
from kmipd.keys.keyring import Keyring
from kmipd.model.attribute_set import AttributeSet
from kmipd.operations import REGISTRY
from kmipd.operations._common import name_values
from kmipd.protocol import messages
from kmipd.protocol._generated import (
    BatchErrorContinuationOption,
    CryptographicAlgorithm,
    KeyFormatType,
    LinkType,
    ObjectType,
    Operation,
    ResultStatus,
    RevocationReasonCode,
    SecretDataType,
    State,
    Tag,
)
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.limits import Limits
from kmipd.protocol.objects import KeyBlock, KeyValue, RevocationReason, SecretData, SymmetricKey
from kmipd.protocol.payloads import (
    AddAttributeRequest,
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
from kmipd.protocol.tables import VERSIONS
from kmipd.protocol.ttlv import DATE_TIME, ENUMERATION, INTEGER, STRUCTURE, TEXT_STRING, Item
from kmipd.service.admin import AdminError, AdminService, KeyFilter
from kmipd.service.context import ServerInfo
from kmipd.service.engine import KmipEngine
from kmipd.service.repository import ObjectRepository
from kmipd.store.records import ObjectQuery, ObjectRecord
from kmipd.store.store import Store
from tests.support.kmip import name_attribute
from tests.unit.operations.conftest import NOW, EngineHarness

OK = ResultStatus.SUCCESS
UNDONE = ResultStatus.OPERATION_UNDONE
AES = CryptographicAlgorithm.AES
V14, V21 = (1, 4), (2, 1)
ACTORS = (0, 1)
TARGETS = ("own", "foreign", "random")
# Small shared pools, so both instances use the same names and tags (a collision across
# instances must not be visible).
NAMES = ("kek-1", "kek-2", "vm-disk")
COMPONENTS = ("vm-1", "vm-2")
HOSTILE_UIDS = (
    "*",
    "%",
    "' OR '1'='1",
    "x'; DROP TABLE objects; --",
    "../../etc/passwd",
    "a\x00b",
    "",
    " ",
    "A" * 65_536,
)

# --- payloads for one UID ----------------------------------------------------------------------


def _link(target: str) -> Attribute:
    link = Item(
        Tag.LINK,
        STRUCTURE,
        [
            Item(Tag.LINK_TYPE, ENUMERATION, LinkType.PARENT_LINK),
            Item(Tag.LINKED_OBJECT_IDENTIFIER, TEXT_STRING, target),
        ],
    )
    return Attribute("Link", link, None, STRUCTURE)


def _revoke(uid: str | None, compromise: bool) -> RevokeRequest:
    code = (
        RevocationReasonCode.KEY_COMPROMISE
        if compromise
        else RevocationReasonCode.CESSATION_OF_OPERATION
    )
    return RevokeRequest(
        unique_identifier=uid,
        revocation_reason=RevocationReason(code=code),
        compromise_occurrence_date=NOW if compromise else None,
    )


# Operation -> payload for (UID or None for the ID Placeholder, a small variant number).
PAYLOADS: dict[Operation, Callable[[str | None, int], Any]] = {
    Operation.GET: lambda uid, v: GetRequest(
        unique_identifier=uid, key_format_type=KeyFormatType.RAW if v % 2 else None
    ),
    Operation.GET_ATTRIBUTES: lambda uid, v: GetAttributesRequest(
        unique_identifier=uid,
        attribute_names=[] if v % 2 else ["State", "Name", "x-Component", "Link"],
    ),
    Operation.GET_ATTRIBUTE_LIST: lambda uid, v: GetAttributeListRequest(unique_identifier=uid),
    Operation.ADD_ATTRIBUTE: lambda uid, v: AddAttributeRequest(
        unique_identifier=uid,
        attribute=(
            Attribute("x-Component", COMPONENTS[v % 2], None, TEXT_STRING),
            name_attribute(NAMES[v % 3]),
            Attribute("Comment", f"note {v}", None, TEXT_STRING),
        )[v % 3],
    ),
    Operation.MODIFY_ATTRIBUTE: lambda uid, v: ModifyAttributeRequest(
        unique_identifier=uid,
        attribute=(
            Attribute("x-Component", COMPONENTS[v % 2], None, TEXT_STRING),
            name_attribute(NAMES[v % 3]),
            Attribute("Comment", f"changed {v}", None, TEXT_STRING),
        )[v % 3],
    ),
    Operation.DELETE_ATTRIBUTE: lambda uid, v: DeleteAttributeRequest(
        unique_identifier=uid, attribute_name=("x-Component", "Name", "Comment")[v % 3]
    ),
    Operation.SET_ATTRIBUTE: lambda uid, v: SetAttributeRequest(
        unique_identifier=uid,
        attribute=(
            Attribute("Comment", f"set {v}", None, TEXT_STRING),
            Attribute("Description", "d", None, TEXT_STRING),
            Attribute("Activation Date", NOW + 3600 * (v % 2), None, DATE_TIME),
        )[v % 3],
    ),
    Operation.ACTIVATE: lambda uid, v: UidRequest(unique_identifier=uid),
    Operation.REVOKE: lambda uid, v: _revoke(uid, bool(v % 2)),
    Operation.DESTROY: lambda uid, v: UidRequest(unique_identifier=uid),
    Operation.CHECK: lambda uid, v: CheckRequest(
        unique_identifier=uid, cryptographic_usage_mask=(4, 8, 1)[v % 3]
    ),
    Operation.RE_KEY: lambda uid, v: ReKeyRequest(
        unique_identifier=uid, offset=3600 if v % 2 else None
    ),
}
UID_OPERATIONS = tuple(op for op in PAYLOADS if op in REGISTRY)
# Set Attribute is a 2.x operation; Modify/Delete without an index are fine in both.
ONLY_2X = {Operation.SET_ATTRIBUTE}


def _versions_for(operation: Operation) -> tuple[tuple[int, int], ...]:
    return (V21,) if operation in ONLY_2X else (V14, V21)


def _aes_attributes(length: int, *extra: Attribute) -> list[Attribute]:
    return [
        Attribute("Cryptographic Algorithm", AES, None, ENUMERATION),
        Attribute("Cryptographic Length", length, None, INTEGER),
        Attribute("Cryptographic Usage Mask", 12, None, INTEGER),
        *extra,
    ]


def _create(version: tuple[int, int], attributes: list[Attribute]) -> CreateRequest:
    if version >= (2, 0):
        return CreateRequest(object_type=ObjectType.SYMMETRIC_KEY, attributes=attributes)
    return CreateRequest(
        object_type=ObjectType.SYMMETRIC_KEY,
        template_attribute=TemplateAttribute(names=[], attributes=attributes),
    )


def _register(
    version: tuple[int, int], secret: bool, material: bytes, extra: list[Attribute]
) -> RegisterRequest:
    if secret:
        obj: Any = SecretData(
            secret_data_type=SecretDataType.PASSWORD,
            key_block=KeyBlock(
                key_format_type=KeyFormatType.OPAQUE,
                key_value=KeyValue(key_material=material, attributes=[]),
            ),
        )
        attributes = [Attribute("Cryptographic Usage Mask", 0, None, INTEGER), *extra]
        object_type = ObjectType.SECRET_DATA
    else:
        obj = SymmetricKey(
            key_block=KeyBlock(
                key_format_type=KeyFormatType.RAW,
                key_value=KeyValue(key_material=material, attributes=[]),
                cryptographic_algorithm=AES,
                cryptographic_length=len(material) * 8,
            )
        )
        attributes = [Attribute("Cryptographic Usage Mask", 12, None, INTEGER), *extra]
        object_type = ObjectType.SYMMETRIC_KEY
    if version >= (2, 0):
        return RegisterRequest(object_type=object_type, attributes=attributes, managed_object=obj)
    return RegisterRequest(
        object_type=object_type,
        template_attribute=TemplateAttribute(names=[], attributes=attributes),
        managed_object=obj,
    )


# --- what a client sees ------------------------------------------------------------------------


def _leaves(value: Any) -> Iterator[str | bytes]:
    """Every text and byte string anywhere in a decoded response."""
    if isinstance(value, str | bytes):
        yield value
    elif isinstance(value, enum.Enum | int | float | bool) or value is None:
        return
    elif isinstance(value, Item):
        yield from _leaves(value.value)
    elif isinstance(value, list | tuple):
        for element in value:
            yield from _leaves(element)
    elif isinstance(value, dict):
        for key, element in value.items():
            yield from _leaves(key)
            yield from _leaves(element)
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _leaves(getattr(value, f.name))
    else:
        yield repr(value)


def _normalise(value: Any, uid: str) -> Any:
    """``value`` (a decoded payload or message) with every occurrence of ``uid`` replaced."""
    if not uid:
        return value
    if isinstance(value, str):
        return value.replace(uid, "<UID>")
    if isinstance(value, Item):
        return Item(value.tag, value.type, _normalise(value.value, uid))
    if isinstance(value, list | tuple):
        return type(value)(_normalise(v, uid) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple(
            (f.name, _normalise(getattr(value, f.name), uid)) for f in dataclasses.fields(value)
        )
    return value


def _outcome(result: messages.ResponseBatchItem, uid: str) -> tuple[Any, ...]:
    return (
        result.operation,
        result.result_status,
        result.result_reason,
        _normalise(result.result_message, uid),
        _normalise(result.payload, uid),
    )


def _snapshot(records: list[ObjectRecord]) -> dict[str, tuple[Any, ...]]:
    return {r.uid: dataclasses.astuple(r) for r in records}


# --- the shared engine -------------------------------------------------------------------------


class _World:
    """One engine, store and inventory service for every example (a new database per example
    would cost more than the steps themselves)."""

    def __init__(self, base: Path) -> None:
        loop = asyncio.new_event_loop()
        store = Store.from_url(f"sqlite:///{base / 'kmipd.db'}", base=base)
        keyring = Keyring(base / "keyring" / "root-keys.json")
        loop.run_until_complete(store.open())
        clock = [float(NOW)]
        instance_keys = InstanceKeys(store, keyring)
        repository = ObjectRepository(store, instance_keys)
        engine = KmipEngine(
            repository,
            ServerInfo(
                vendor_identification="kmipd test",
                versions=tuple(sorted(VERSIONS, reverse=True)),
                operations=tuple(REGISTRY),
                object_types=(ObjectType.SYMMETRIC_KEY, ObjectType.SECRET_DATA),
            ),
            Limits(),
            clock=lambda: clock[0],
        )

        async def nothing() -> None:
            return None

        self.harness = EngineHarness(engine, store, keyring, loop, clock)
        self.admin = AdminService(
            store,
            keyring,
            instance_keys,
            repository,
            config.Settings(data_dir=base),
            nothing,
            clock=lambda: clock[0],
        )
        self.examples = 0
        self.steps = 0
        self.checks: dict[str, int] = {}

    def run(self, coroutine: Any) -> Any:
        return self.harness.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.run(self.harness.store.close())
        self.harness.loop.close()


class TenantIsolation(RuleBasedStateMachine):
    world: ClassVar[_World]

    def __init__(self) -> None:
        super().__init__()
        world = self.world
        world.examples += 1
        self.names = (f"A{world.examples}", f"B{world.examples}")
        for name in self.names:
            world.harness.add_instance(name)
        # The model: UIDs each instance created (and still has rows for), and key material
        # each one is known to hold.
        self.owned: tuple[set[str], set[str]] = (set(), set())
        self.material: tuple[set[bytes], set[bytes]] = (set(), set())
        # Foreign UIDs each actor has named in a request (it may store them, e.g. in a Link,
        # and get them back: that is no leak).
        self.named: tuple[set[str], set[str]] = (set(), set())
        self.counter = 0

    # -- helpers ---------------------------------------------------------------------------

    @property
    def h(self) -> EngineHarness:
        return self.world.harness

    def count(self, what: str) -> None:
        self.world.checks[what] = self.world.checks.get(what, 0) + 1

    def objects(self, actor: int) -> list[ObjectRecord]:
        return self.world.run(self.h.store.find_objects(ObjectQuery(instance=self.names[actor])))

    def pick(self, actor: int, target: str, index: int) -> str:
        if target == "own" and self.owned[actor]:
            return sorted(self.owned[actor])[index % len(self.owned[actor])]
        if target == "foreign" and self.owned[1 - actor]:
            uid = sorted(self.owned[1 - actor])[index % len(self.owned[1 - actor])]
            self.named[actor].add(uid)
            return uid
        return str(uuid.uuid4())

    def send(
        self,
        actor: int,
        *items: tuple[Operation, Any],
        version: tuple[int, int] = V21,
        option: BatchErrorContinuationOption | None = None,
        named: tuple[str, ...] = (),
    ) -> list[messages.ResponseBatchItem]:
        """Run a batch as ``actor``; check (c) the other instance is untouched and (a) the
        response carries nothing of the other instance beyond the UIDs the request named."""
        other = 1 - actor
        before = _snapshot(self.objects(other))
        results = self.h.batch(*items, version=version, instance=self.names[actor], option=option)
        assert _snapshot(self.objects(other)) == before, "the other instance's objects changed"
        self.check_no_leak(actor, results, named)
        self.count("batches sent")
        return results

    def check_no_leak(self, actor: int, response: Any, named: tuple[str, ...] = ()) -> None:
        other = 1 - actor
        foreign_uids = {r.uid for r in self.objects(other)} - set(named) - self.named[actor]
        foreign_material = self.material[other]
        for leaf in _leaves(response):
            if isinstance(leaf, bytes):
                for material in foreign_material:
                    assert material not in leaf, "another instance's key material leaked"
            else:
                for uid in foreign_uids:
                    assert uid not in leaf, f"another instance's UID leaked: {leaf[:200]!r}"

    def adopt(self, actor: int, results: list[messages.ResponseBatchItem]) -> None:
        """New objects from successful Create/Register/ReKey become the actor's."""
        for result in results:
            if result.result_status != OK:
                continue
            if result.operation in (Operation.CREATE, Operation.REGISTER, Operation.RE_KEY):
                self.owned[actor].add(str(result.payload.unique_identifier))
            if result.operation == Operation.GET and result.payload is not None:
                for leaf in _leaves(result.payload.managed_object):
                    if isinstance(leaf, bytes) and len(leaf) >= 16:
                        self.material[actor].add(leaf)

    def same_as_random(
        self,
        actor: int,
        operation: Operation,
        variant: int,
        version: tuple[int, int],
        foreign: str,
        seen: messages.ResponseBatchItem,
    ) -> None:
        """(b): ``seen`` (the answer for the foreign UID) is what a random UID gets."""
        random_uid = str(uuid.uuid4())
        [expected] = self.send(
            actor,
            (operation, PAYLOADS[operation](random_uid, variant)),
            version=version,
        )
        assert _outcome(seen, foreign) == _outcome(expected, random_uid), (
            operation.name,
            seen,
            expected,
        )
        assert seen.result_status != OK, f"{operation.name} on a foreign UID succeeded"
        self.count("foreign answers compared")

    # -- creating ---------------------------------------------------------------------------

    @initialize(actor=st.sampled_from(ACTORS))
    def seed(self, actor: int) -> None:
        # Every example starts with an object on each side, so foreign UIDs exist at once.
        for who in (actor, 1 - actor):
            self.create(who, V21, 256, 0, 0)

    @rule(
        actor=st.sampled_from(ACTORS),
        version=st.sampled_from((V14, V21)),
        length=st.sampled_from((128, 256)),
        name=st.integers(0, len(NAMES)),
        component=st.integers(0, len(COMPONENTS)),
    )
    def create(
        self, actor: int, version: tuple[int, int], length: int, name: int, component: int
    ) -> None:
        extra = []
        if name < len(NAMES):
            extra.append(name_attribute(NAMES[name]))
        if component < len(COMPONENTS):
            extra.append(Attribute("x-Component", COMPONENTS[component], None, TEXT_STRING))
        [result] = self.send(
            actor,
            (Operation.CREATE, _create(version, _aes_attributes(length, *extra))),
            version=version,
        )
        self.check_create_failure(actor, result, name)
        self.adopt(actor, [result])

    def check_create_failure(
        self, actor: int, result: messages.ResponseBatchItem, name: int
    ) -> None:
        """A refused Create/Register is explained by the actor's own objects (a name it
        already uses), never by the other instance's."""
        if result.result_status == OK:
            return
        assert name < len(NAMES), result
        # Any of an object's Names counts (the store indexes only the first; a second one can
        # come from AddAttribute), as it does for kmipd's own uniqueness check.
        rows = self.world.run(self.h.store.find_objects(ObjectQuery(instance=self.names[actor])))
        mine = [
            r for r in rows if NAMES[name] in name_values(AttributeSet.from_bytes(r.attributes))
        ]
        assert mine, f"refused for a name only the other instance uses: {result}"
        self.count("name collisions explained by own objects")

    @rule(
        actor=st.sampled_from(ACTORS),
        version=st.sampled_from((V14, V21)),
        secret=st.booleans(),
        name=st.integers(0, len(NAMES)),
    )
    def register(self, actor: int, version: tuple[int, int], secret: bool, name: int) -> None:
        self.counter += 1
        material = f"CANARY-{self.names[actor]}-{self.counter:08d}-".encode().ljust(32, b"#")
        extra = [name_attribute(NAMES[name])] if name < len(NAMES) else []
        [result] = self.send(
            actor,
            (Operation.REGISTER, _register(version, secret, material, extra)),
            version=version,
        )
        self.check_create_failure(actor, result, name)
        if result.result_status == OK:
            self.material[actor].add(material)
        self.adopt(actor, [result])

    @rule(actor=st.sampled_from(ACTORS), kind=st.sampled_from(("foreign", "random")))
    def create_claiming_a_uid(self, actor: int, kind: str) -> None:
        """Create naming a foreign UID (a server-set attribute) answers as for a random one."""
        foreign = self.pick(actor, kind, 0)
        random_uid = str(uuid.uuid4())
        answers = [
            self.send(
                actor,
                (
                    Operation.CREATE,
                    _create(
                        V21,
                        _aes_attributes(
                            256, Attribute("Unique Identifier", uid, None, TEXT_STRING)
                        ),
                    ),
                ),
                named=(uid,),
            )[0]
            for uid in (foreign, random_uid)
        ]
        assert _outcome(answers[0], foreign)[:4] == _outcome(answers[1], random_uid)[:4]
        self.adopt(actor, answers)
        for answer in answers:
            if answer.result_status == OK:
                assert answer.payload.unique_identifier not in (foreign, random_uid)

    # -- single operations on one UID --------------------------------------------------------

    @rule(
        actor=st.sampled_from(ACTORS),
        operation=st.sampled_from(UID_OPERATIONS),
        kind=st.sampled_from(TARGETS),
        index=st.integers(0, 1000),
        variant=st.integers(0, 5),
        v2=st.booleans(),
    )
    def uid_operation(
        self,
        actor: int,
        operation: Operation,
        kind: str,
        index: int,
        variant: int,
        v2: bool,
    ) -> None:
        version = V21 if v2 or operation in ONLY_2X else V14
        uid = self.pick(actor, kind, index)
        is_foreign = uid in self.owned[1 - actor]
        [result] = self.send(
            actor, (operation, PAYLOADS[operation](uid, variant)), version=version, named=(uid,)
        )
        if is_foreign:
            self.same_as_random(actor, operation, variant, version, uid, result)
        elif uid not in self.owned[actor]:
            assert result.result_status != OK, (operation.name, result)
        self.adopt(actor, [result])

    @rule(
        actor=st.sampled_from(ACTORS),
        uid=st.sampled_from(HOSTILE_UIDS),
        operation=st.sampled_from(UID_OPERATIONS),
    )
    def hostile_uid(self, actor: int, uid: str, operation: Operation) -> None:
        [result] = self.send(
            actor, (operation, PAYLOADS[operation](uid, 0)), version=_versions_for(operation)[-1]
        )
        assert result.result_status != OK, (operation.name, repr(uid)[:40], result)
        message = result.result_message or ""
        assert "Traceback" not in message and "sqlite" not in message.lower(), message

    @rule(
        actor=st.sampled_from(ACTORS),
        operation=st.sampled_from(
            [op for op in (Operation.ADD_ATTRIBUTE, Operation.SET_ATTRIBUTE) if op in REGISTRY]
        ),
        index=st.integers(0, 1000),
    )
    def link_to_foreign(self, actor: int, operation: Operation, index: int) -> None:
        """Linking an own object to a foreign UID answers as linking it to a random UID."""
        if not self.owned[actor]:
            return
        own = self.pick(actor, "own", index)
        foreign = self.pick(actor, "foreign", index)
        random_uid = str(uuid.uuid4())
        payload = (
            AddAttributeRequest if operation == Operation.ADD_ATTRIBUTE else SetAttributeRequest
        )
        answers = [
            self.send(
                actor,
                (operation, payload(unique_identifier=own, attribute=_link(target))),
                named=(own, target),
            )[0]
            for target in (foreign, random_uid)
        ]
        assert answers[0].result_status == answers[1].result_status
        assert answers[0].result_reason == answers[1].result_reason
        assert _normalise(answers[0].result_message, foreign) == _normalise(
            answers[1].result_message, random_uid
        )
        self.count("links to foreign UIDs compared")

    # -- batches ----------------------------------------------------------------------------

    @rule(
        actor=st.sampled_from(ACTORS),
        plan=st.lists(
            st.tuples(
                st.sampled_from(UID_OPERATIONS),
                st.sampled_from((*TARGETS, "placeholder", "create")),
                st.integers(0, 1000),
                st.integers(0, 5),
            ),
            min_size=1,
            max_size=6,
        ),
        option=st.sampled_from(
            (
                None,
                BatchErrorContinuationOption.STOP,
                BatchErrorContinuationOption.CONTINUE,
                BatchErrorContinuationOption.UNDO,
            )
        ),
    )
    def mixed_batch(
        self,
        actor: int,
        plan: list[tuple[Operation, str, int, int]],
        option: BatchErrorContinuationOption | None,
    ) -> None:
        items: list[tuple[Operation, Any]] = []
        targets: list[str | None] = []
        for operation, target, index, variant in plan:
            if target == "create":
                items.append((Operation.CREATE, _create(V21, _aes_attributes(256))))
                targets.append(None)
                continue
            uid = None if target == "placeholder" else self.pick(actor, target, index)
            items.append((operation, PAYLOADS[operation](uid, variant)))
            targets.append(uid)
        named = tuple(uid for uid in targets if uid)
        results = self.send(actor, *items, option=option, named=named)
        assert len(results) <= len(items)
        if option in (None, BatchErrorContinuationOption.STOP, BatchErrorContinuationOption.UNDO):
            assert all(r.result_status in (OK, UNDONE) for r in results[:-1])
        for (operation, _payload), uid, (_, _, _, variant), result in zip(
            items, targets, plan, results, strict=False
        ):
            if uid is not None and uid in self.owned[1 - actor]:
                self.same_as_random(actor, operation, variant, V21, uid, result)
        self.adopt(actor, results)
        self.count(f"batches with option {option.name if option else 'default'}")

    @rule(
        actor=st.sampled_from(ACTORS),
        plan=st.lists(
            st.tuples(
                st.sampled_from(UID_OPERATIONS),
                st.sampled_from(("foreign", "random", "placeholder")),
                st.integers(0, 1000),
                st.integers(0, 5),
            ),
            min_size=1,
            max_size=5,
        ),
        option=st.sampled_from(
            (BatchErrorContinuationOption.CONTINUE, BatchErrorContinuationOption.UNDO)
        ),
    )
    def twin_batches(
        self,
        actor: int,
        plan: list[tuple[Operation, str, int, int]],
        option: BatchErrorContinuationOption,
    ) -> None:
        """A batch naming foreign UIDs and the same batch with random UIDs in their place
        get the same answer, item for item."""
        foreign_uids = [
            None if target == "placeholder" else self.pick(actor, target, index)
            for _, target, index, _ in plan
        ]
        randoms = {uid: str(uuid.uuid4()) for uid in foreign_uids if uid}
        answers = []
        for uids in (foreign_uids, [randoms.get(uid) if uid else None for uid in foreign_uids]):
            items = [
                (operation, PAYLOADS[operation](uid, variant))
                for (operation, _, _, variant), uid in zip(plan, uids, strict=True)
            ]
            answers.append(
                self.send(actor, *items, option=option, named=tuple(u for u in uids if u))
            )
        seen, expected = answers

        def normalised(results: list[messages.ResponseBatchItem], swap: dict[str, str]) -> Any:
            out = []
            for r in results:
                message = r.result_message or ""
                for old, new in swap.items():
                    message = message.replace(old, new)
                out.append((r.operation, r.result_status, r.result_reason, message, r.payload))
            return out

        marks = {uid: f"<UID{i}>" for i, uid in enumerate(randoms)}
        assert normalised(seen, marks) == normalised(
            expected, {randoms[uid]: mark for uid, mark in marks.items()}
        )
        assert all(r.result_status != OK for r in seen)
        self.count("twin batches compared")

    # -- Locate -----------------------------------------------------------------------------

    def locate_filters(self, actor: int, index: int) -> list[list[Attribute]]:
        foreign = self.pick(actor, "foreign", index)
        own = self.pick(actor, "own", index)
        return [
            [],
            [Attribute("Object Type", ObjectType.SYMMETRIC_KEY, None, ENUMERATION)],
            [Attribute("Object Type", ObjectType.SECRET_DATA, None, ENUMERATION)],
            [Attribute("Cryptographic Algorithm", AES, None, ENUMERATION)],
            [Attribute("Cryptographic Length", 128, None, INTEGER)],
            [Attribute("Cryptographic Length", 256, None, INTEGER)],
            *([name_attribute(n)] for n in NAMES),
            *([Attribute("State", s, None, ENUMERATION)] for s in State),
            *([Attribute("x-Component", c, None, TEXT_STRING)] for c in COMPONENTS),
            [Attribute("Unique Identifier", foreign, None, TEXT_STRING)],
            [Attribute("Unique Identifier", own, None, TEXT_STRING)],
            [Attribute("Unique Identifier", str(uuid.uuid4()), None, TEXT_STRING)],
            [Attribute("Cryptographic Usage Mask", 4, None, INTEGER)],
            [
                Attribute("Initial Date", NOW - 10, None, DATE_TIME),
                Attribute("Initial Date", NOW + 10, None, DATE_TIME),
            ],
            [_link(foreign)],
            [Attribute("Comment", "note 2", None, TEXT_STRING)],
            [
                Attribute("Object Type", ObjectType.SYMMETRIC_KEY, None, ENUMERATION),
                Attribute("Cryptographic Algorithm", AES, None, ENUMERATION),
                Attribute("Cryptographic Length", 256, None, INTEGER),
                Attribute("x-Component", "vm-1", None, TEXT_STRING),
            ],
        ]

    @rule(
        actor=st.sampled_from(ACTORS),
        which=st.integers(0, 10_000),
        index=st.integers(0, 1000),
        version=st.sampled_from((V14, V21)),
        mask=st.sampled_from((None, 1, 2, 4, 7)),
        paging=st.sampled_from((None, (1, 0), (2, 1), (100, 0))),
    )
    def locate(
        self,
        actor: int,
        which: int,
        index: int,
        version: tuple[int, int],
        mask: int | None,
        paging: tuple[int, int] | None,
    ) -> None:
        filters = self.locate_filters(actor, index)
        attributes = filters[which % len(filters)]
        maximum, offset = paging if paging else (None, None)
        request = LocateRequest(
            attributes=attributes,
            storage_status_mask=mask,
            maximum_items=maximum,
            offset_items=offset,
        )
        [result] = self.send(actor, (Operation.LOCATE, request), version=version)
        mine = self.objects(actor)
        if result.result_status != OK:
            self.count(f"Locates refused ({result.result_reason!r})")
            return
        found = set(result.payload.unique_identifiers)
        assert found <= {r.uid for r in mine}, "Locate listed objects of another instance"
        live = {
            r.uid for r in mine if r.state not in (State.DESTROYED, State.DESTROYED_COMPROMISED)
        }
        if result.payload.located_items is not None:
            assert result.payload.located_items <= len(mine)
        if not attributes and mask is None and paging is None:
            assert found == live, "Locate with no filter is not exactly the own live objects"
            self.count("unfiltered Locates matched the model")
        self.count("Locates")

    @rule(actor=st.sampled_from(ACTORS), version=st.sampled_from((V14, V21)))
    def locate_everything(self, actor: int, version: tuple[int, int]) -> None:
        [result] = self.send(actor, (Operation.LOCATE, LocateRequest()), version=version)
        assert result.result_status == OK, result
        live = {
            r.uid
            for r in self.objects(actor)
            if r.state not in (State.DESTROYED, State.DESTROYED_COMPROMISED)
        }
        assert set(result.payload.unique_identifiers) == live
        if result.payload.located_items is not None:
            assert result.payload.located_items == len(live)
        self.count("unfiltered Locates matched the model")

    @rule(actor=st.sampled_from(ACTORS), index=st.integers(0, 1000))
    def locate_then_placeholder(self, actor: int, index: int) -> None:
        """Locate by a foreign UID, then Get/Destroy the ID Placeholder: as for a random UID."""
        foreign = self.pick(actor, "foreign", index)
        random_uid = str(uuid.uuid4())
        answers = []
        for uid in (foreign, random_uid):
            answers.append(
                self.send(
                    actor,
                    (
                        Operation.LOCATE,
                        LocateRequest(
                            attributes=[Attribute("Unique Identifier", uid, None, TEXT_STRING)]
                        ),
                    ),
                    (Operation.GET, GetRequest()),
                    (Operation.DESTROY, UidRequest()),
                    option=BatchErrorContinuationOption.CONTINUE,
                    named=(uid,),
                )
            )
        seen, expected = answers
        assert [_outcome(r, foreign) for r in seen] == [_outcome(r, random_uid) for r in expected]
        assert seen[0].payload.unique_identifiers == []

    # -- inventory ----------------------------------------------------------------------------

    @rule(
        actor=st.sampled_from(ACTORS),
        states=st.sampled_from((None, (State.PRE_ACTIVE,), (State.ACTIVE, State.DEACTIVATED))),
        types=st.sampled_from((None, (ObjectType.SYMMETRIC_KEY,), (ObjectType.SECRET_DATA,))),
        x_component=st.sampled_from((None, *COMPONENTS)),
    )
    def inventory_list(
        self,
        actor: int,
        states: tuple[int, ...] | None,
        types: tuple[int, ...] | None,
        x_component: str | None,
    ) -> None:
        wanted = KeyFilter(states=states, object_types=types, x_component=x_component, limit=10_000)
        keys, total = self.world.run(self.world.admin.keys(self.names[actor], wanted))
        mine = {r.uid for r in self.objects(actor)}
        assert {k.uid for k in keys} <= mine and total == len(keys)
        if wanted == KeyFilter(limit=10_000):
            assert total == len(mine)
        self.check_no_leak(actor, keys)
        self.count("inventory listings")

    @rule(
        actor=st.sampled_from(ACTORS),
        kind=st.sampled_from(TARGETS),
        index=st.integers(0, 1000),
        destroy=st.booleans(),
    )
    def inventory_key(self, actor: int, kind: str, index: int, destroy: bool) -> None:
        uid = self.pick(actor, kind, index)
        other = 1 - actor
        before = _snapshot(self.objects(other))

        def ask(key: str) -> tuple[str, Any]:
            call = self.world.admin.destroy_key if destroy else self.world.admin.key
            try:
                info = self.world.run(call(self.names[actor], key))
            except AdminError as exc:
                return "error", (exc.kind, exc.code, str(exc).replace(key, "<UID>"))
            return "ok", info

        answer = ask(uid)
        assert _snapshot(self.objects(other)) == before
        self.check_no_leak(actor, answer, (uid,))
        if uid in self.owned[other]:
            random_uid = str(uuid.uuid4())
            assert answer == ask(random_uid)
            assert answer[0] == "error"
            self.count("inventory foreign answers compared")
        elif uid not in self.owned[actor]:
            assert answer[0] == "error"
        else:
            assert answer[0] == "ok" and answer[1].uid == uid

    # -- time -------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from((1, 3601)))
    def advance_clock(self, seconds: int) -> None:
        self.h.advance(seconds)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def store_matches_model(self) -> None:
        """Each instance's rows are exactly the objects it created (and not undone)."""
        self.world.steps += 1  # after the initialisation and after each rule
        for actor in ACTORS:
            assert {r.uid for r in self.objects(actor)} == self.owned[actor]
        assert not self.owned[0] & self.owned[1]


MIN_STEPS = 10_000


def test_tenant_isolation_state_machine(tmp_path_factory: pytest.TempPathFactory) -> None:
    world = _World(Path(tmp_path_factory.mktemp("isolation")))
    TenantIsolation.world = world
    started = time.monotonic()
    try:
        run_state_machine_as_test(
            TenantIsolation,
            settings=settings(
                settings.default,
                max_examples=max(200, settings.default.max_examples),
                stateful_step_count=60,
            ),
        )
    finally:
        world.close()
    elapsed = time.monotonic() - started
    rules = world.steps - world.examples
    print(
        f"[measure] tenant isolation: {rules} steps (rules run) in {world.examples} examples, "
        f"{elapsed:.1f} s; {dict(sorted(world.checks.items()))}"
    )
    assert rules >= MIN_STEPS, rules
