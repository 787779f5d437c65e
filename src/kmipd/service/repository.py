"""Managed objects of one instance, between the operations and the store.

This is the only way operations reach the store, and it seals every object body before it
leaves (the envelope cannot be skipped). An object of another instance is indistinguishable
from one that does not exist: both raise Item Not Found with the same message.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from kmipd.keys import envelope
from kmipd.keys.instance_keys import InstanceKeys, RootKeyUnavailable
from kmipd.model.attribute_set import AttributeSet
from kmipd.model.searchable import searchable_texts
from kmipd.protocol import ttlv
from kmipd.protocol._generated import ObjectType, ResultReason, State, Tag
from kmipd.protocol.codec import from_item, to_item
from kmipd.protocol.limits import Limits
from kmipd.protocol.objects import MANAGED_OBJECTS, OBJECT_TYPES
from kmipd.service.errors import ConcurrentUpdate, KmipError
from kmipd.store.records import ObjectQuery, ObjectRecord
from kmipd.store.store import Store

log = logging.getLogger(__name__)

# Object type -> (tag, class) of its KMIP structure.
_STRUCTURES: dict[ObjectType, tuple[int, type]] = {
    object_type: (tag, cls)
    for tag, cls in MANAGED_OBJECTS.items()
    for c, object_type in OBJECT_TYPES.items()
    if c is cls
}

# Object bodies are stored in the KMIP 1.4 shape of their structure: it can carry
# everything a 1.x or 2.x client sends.
_BODY_VERSION = (1, 4)


@dataclass(slots=True)
class ManagedObject:
    uid: str
    instance: str
    object_type: ObjectType
    state: State
    attributes: AttributeSet
    created: int
    # The typed KMIP object (SymmetricKey, ...), None until loaded; it holds key material.
    body: Any = field(default=None, repr=False)
    last_fetched: int | None = None
    _record: ObjectRecord | None = None
    last_fetched_by: str | None = None  # fingerprint of the certificate that fetched it
    _texts: frozenset[str] | None = None  # the searchable texts in the store's index


def new_uid() -> str:
    return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))


class ObjectRepository:
    def __init__(self, store: Store, keys: InstanceKeys, *, durable: bool = True) -> None:
        self._store = store
        self._keys = keys
        # False: writes are committed but left for a later durable commit to put on disk
        # (see JournalingRepository).
        self._durable = durable

    async def root_key_id(self, instance: str) -> str:
        for record in await self._store.instances():
            if record.name == instance:
                return record.root_key_id
        raise KmipError(ResultReason.GENERAL_FAILURE, "the client's instance does not exist")

    async def _seal(self, instance: str, uid: str, object_type: int, body: Any) -> bytes:
        tag = _STRUCTURES[ObjectType(object_type)][0]
        plaintext = ttlv.encode(to_item(body, tag, _BODY_VERSION))
        try:
            version, key = await self._keys.current(instance, await self.root_key_id(instance))
        except RootKeyUnavailable:
            raise _root_key_error() from None
        return envelope.seal(key, version, instance, uid, plaintext)

    async def create(
        self,
        instance: str,
        object_type: ObjectType,
        body: Any,
        attributes: AttributeSet,
        now: int,
        state: State = State.PRE_ACTIVE,
        uid: str | None = None,
    ) -> ManagedObject:
        uid = uid or new_uid()
        obj = ManagedObject(uid, instance, object_type, state, attributes, now, body)
        record = ObjectRecord(
            uid=uid,
            instance=instance,
            object_type=int(object_type),
            state=int(state),
            attributes=attributes.to_bytes(),
            sealed=(
                await self._seal(instance, uid, object_type, body) if body is not None else None
            ),
            created=now,
            updated=now,
            **_indexed(attributes),
        )
        obj._texts = searchable_texts(attributes)
        await self._store.insert_object(record, texts=obj._texts, durable=self._durable)
        obj._record = record
        return obj

    async def get(self, instance: str, uid: Any, *, load_body: bool = False) -> ManagedObject:
        if not isinstance(uid, str) or not uid:
            raise KmipError(ResultReason.OBJECT_NOT_FOUND, "no object with this Unique Identifier")
        record = await self._store.get_object(instance, uid)
        if record is None:
            raise KmipError(ResultReason.OBJECT_NOT_FOUND, "no object with this Unique Identifier")
        obj = _from_record(record)
        if load_body:
            await self.load_body(obj)
        return obj

    async def load_body(self, obj: ManagedObject) -> Any:
        record = obj._record
        assert record is not None
        if record.sealed is None:
            raise KmipError(
                ResultReason.OBJECT_DESTROYED, "the object's key material was destroyed"
            )
        try:
            key = await self._keys.key(obj.instance, envelope.sealed_version(record.sealed))
            plaintext = envelope.unseal(key, obj.instance, obj.uid, record.sealed)
        except RootKeyUnavailable:
            raise _root_key_error() from None
        except envelope.SealError:
            # Not the client's doing: the row was altered or copied from another slot.
            log.error(
                "object %s of instance %s: stored material fails its integrity check",
                obj.uid,
                obj.instance,
            )
            raise KmipError(
                ResultReason.CRYPTOGRAPHIC_FAILURE,
                "the object's stored material failed its integrity check",
            ) from None
        cls = _STRUCTURES[obj.object_type][1]
        obj.body = from_item(cls, ttlv.decode(plaintext, _BODY_LIMITS), _BODY_VERSION)
        return obj.body

    async def save(
        self,
        obj: ManagedObject,
        now: int,
        *,
        destroy_body: bool = False,
        new_body: bool = False,
        durable: bool = True,
    ) -> None:
        """Write back state, attributes and (``new_body``) the body; compare-and-swap.
        ``durable=False`` only for bookkeeping (see :meth:`Database.write`)."""
        record = obj._record
        assert record is not None
        record.state = int(obj.state)
        record.attributes = obj.attributes.to_bytes()
        record.updated = now
        record.last_fetched = obj.last_fetched
        record.last_fetched_by = obj.last_fetched_by
        for column, value in _indexed(obj.attributes).items():
            setattr(record, column, value)
        if destroy_body:
            record.sealed = None
        elif new_body:
            record.sealed = await self._seal(obj.instance, obj.uid, obj.object_type, obj.body)
        texts = searchable_texts(obj.attributes)
        changed = texts if texts != obj._texts else None
        if not await self._store.update_object(
            record, texts=changed, durable=durable and self._durable
        ):
            raise ConcurrentUpdate()
        obj._texts = texts

    async def find(self, query: ObjectQuery) -> list[ManagedObject]:
        return [_from_record(r) for r in await self._store.find_objects(query)]

    async def discard(self, obj: ManagedObject) -> None:
        """Remove an object this request created and could not finish (ReKey's new key
        when the old one cannot be updated)."""
        await self._store.delete_object(obj.instance, obj.uid, durable=self._durable)


class JournalingRepository(ObjectRepository):
    """An :class:`ObjectRepository` that remembers what a batch changed, so it can be undone.

    Used for the Undo Batch Error Continuation Option: every create and save is journalled
    with the row as it was before; :meth:`undo` puts the rows back in reverse order (and
    removes the objects the batch made). A row that another request changed in the meantime
    is left alone (compare-and-swap on the revision) and reported.
    """

    def __init__(self, base: ObjectRepository, *, durable: bool = True) -> None:
        """``durable=False``: the batch's writes do not each wait for the disk; the caller
        makes a durable commit (the audit trail's) before it answers, and with it everything
        committed before (a database's log is flushed in order)."""
        super().__init__(base._store, base._keys, durable=durable)
        # (record before, or None for an object this batch created; the record after)
        self._journal: list[tuple[ObjectRecord | None, ObjectRecord]] = []

    async def create(
        self,
        instance: str,
        object_type: ObjectType,
        body: Any,
        attributes: AttributeSet,
        now: int,
        state: State = State.PRE_ACTIVE,
        uid: str | None = None,
    ) -> ManagedObject:
        obj = await super().create(instance, object_type, body, attributes, now, state, uid)
        assert obj._record is not None
        self._journal.append((None, obj._record))
        return obj

    async def save(
        self,
        obj: ManagedObject,
        now: int,
        *,
        destroy_body: bool = False,
        new_body: bool = False,
        durable: bool = True,
    ) -> None:
        assert obj._record is not None
        before = replace(obj._record)
        await super().save(
            obj, now, destroy_body=destroy_body, new_body=new_body, durable=durable
        )
        self._journal.append((before, obj._record))

    async def discard(self, obj: ManagedObject) -> None:
        await super().discard(obj)
        self._journal = [entry for entry in self._journal if entry[1].uid != obj.uid]

    async def undo(self) -> bool:
        """Undo every journalled change, newest first; False if one could not be undone."""
        complete = True
        revisions: dict[str, int] = {}  # uid -> the revision the row is at now
        for before, after in reversed(self._journal):
            current = revisions.setdefault(after.uid, after.revision)
            if before is None:
                complete &= await self._store.delete_object(after.instance, after.uid)
            else:
                texts = searchable_texts(AttributeSet.from_bytes(before.attributes))
                complete &= await self._store.restore_object(before, current, texts=texts)
                revisions[after.uid] = current + 1
        self._journal.clear()
        return complete


def _root_key_error() -> KmipError:
    return KmipError(
        ResultReason.CRYPTOGRAPHIC_FAILURE,
        "the instance's root key is unavailable; its keys cannot be served",
    )


_BODY_LIMITS = Limits(max_frame_bytes=64 << 20, max_field_bytes=16 << 20)


def _from_record(record: ObjectRecord) -> ManagedObject:
    attributes = AttributeSet.from_bytes(record.attributes)
    return ManagedObject(
        uid=record.uid,
        instance=record.instance,
        object_type=ObjectType(record.object_type),
        state=State(record.state),
        attributes=attributes,
        created=record.created,
        last_fetched=record.last_fetched,
        _record=record,
        last_fetched_by=record.last_fetched_by,
        _texts=searchable_texts(attributes),
    )


def _indexed(attributes: AttributeSet) -> dict[str, Any]:
    name = attributes.value("Name")
    if isinstance(name, ttlv.Item):
        value = name.find(Tag.NAME_VALUE)
        name = value.value if value is not None else None
    algorithm = attributes.value("Cryptographic Algorithm")
    length = attributes.value("Cryptographic Length")
    return {
        "name": name if isinstance(name, str) else None,
        "algorithm": int(algorithm) if isinstance(algorithm, int) else None,
        "length": int(length) if isinstance(length, int) else None,
    }
