"""Rotation of an instance's keys and the re-wrap job, against a real store and keyring."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from kmipd.keys import envelope
from kmipd.keys.instance_keys import InstanceKeys
from kmipd.keys.keyring import Keyring, KeyRules
from kmipd.model.attribute_set import AttributeSet
from kmipd.protocol._generated import ObjectType
from kmipd.service.admin import AdminError
from kmipd.service.rewrap import RewrapService
from kmipd.store.records import InstanceRecord, ObjectRecord
from kmipd.store.store import Store

Scenario = Callable[[Store, Keyring, InstanceKeys, RewrapService, str], Awaitable[None]]


def _run(tmp_path: Path, store_url: str, scenario: Scenario, **options: float) -> None:
    async def main() -> None:
        store = Store.from_url(store_url, base=tmp_path)
        await store.open()
        try:
            ring = Keyring.in_data_dir(tmp_path, rules=KeyRules(action_delay=0))
            keys = InstanceKeys(store, ring)
            root = ring.create("root")
            await store.add_instance(InstanceRecord("vsphere", root, 0))
            service = RewrapService(store, ring, keys, batch_size=7, poll_seconds=0.01, **options)
            try:
                await scenario(store, ring, keys, service, root)
            finally:
                await service.close()
        finally:
            await store.close()

    asyncio.run(main())


async def _seal_objects(store: Store, keys: InstanceKeys, root: str, n: int) -> dict:
    """``n`` objects with opaque bodies sealed under the current version; uid -> plaintext."""
    plain = {}
    for i in range(n):
        uid = f"uid-{i:04d}"
        body = f"material {i}".encode()
        version, key = await keys.current("vsphere", root)
        record = ObjectRecord(
            uid=uid,
            instance="vsphere",
            object_type=int(ObjectType.OPAQUE_OBJECT),
            state=1,
            attributes=AttributeSet().to_bytes(),
            sealed=envelope.seal(key, version, "vsphere", uid, body),
            created=0,
            updated=0,
        )
        await store.insert_object(record)
        plain[uid] = body
    return plain


async def _check_all(store: Store, keys: InstanceKeys, plain: dict, version: int) -> None:
    for uid, body in plain.items():
        record = await store.get_object("vsphere", uid)
        assert record is not None and record.sealed is not None
        assert envelope.sealed_version(record.sealed) == version
        key = await keys.key("vsphere", version)
        assert envelope.unseal(key, "vsphere", uid, record.sealed) == body


def test_rotation_then_rewrap_moves_everything_and_is_idempotent(
    tmp_path: Path, store_url: str
) -> None:
    async def scenario(store, ring, keys, service, root) -> None:  # type: ignore[no-untyped-def]
        plain = await _seal_objects(store, keys, root, 40)
        rotation = await service.rotate("vsphere")
        assert (rotation.root_key_version, rotation.wrapping_key_version) == (2, 2)
        assert (await keys.current("vsphere", root))[0] == 2  # new seals at once
        status = await service.status("vsphere")
        assert status.state == "running" and status.objects_remaining == 40
        job = await service.run_job("vsphere")
        assert job is not None and job.state == "done" and job.rewrapped == 40
        await _check_all(store, keys, plain, 2)
        # Again: nothing left to do, nothing changes.
        await service.start("vsphere")
        job = await service.run_job("vsphere")
        assert job is not None and job.state == "done"
        assert job.rewrapped == 0 and job.skipped == 40
        await _check_all(store, keys, plain, 2)
        status = await service.status("vsphere")
        assert [(v.version, v.objects, v.root_key_version) for v in status.versions] == [
            (1, 0, 1),
            (2, 40, 2),
        ]
        assert status.percent == 100.0

    _run(tmp_path, store_url, scenario)


def test_a_concurrent_change_is_never_lost(tmp_path: Path, store_url: str) -> None:
    async def scenario(store, ring, keys, service, root) -> None:  # type: ignore[no-untyped-def]
        plain = await _seal_objects(store, keys, root, 20)
        await service.rotate("vsphere")
        real = store.reseal_batch
        changed = []

        async def racing(instance, owner, writes, **kw):  # type: ignore[no-untyped-def]
            if not changed and writes:
                # A KMIP request changes the first object between the read and the write.
                uid = writes[0][0]
                record = await store.get_object(instance, uid)
                assert record is not None
                record.state = 2
                assert await store.update_object(record)
                changed.append(uid)
            return await real(instance, owner, writes, **kw)

        store.reseal_batch = racing  # type: ignore[method-assign]
        job = await service.run_job("vsphere")
        assert job is not None and job.state == "done" and job.retries == 1
        record = await store.get_object("vsphere", changed[0])
        assert record is not None and record.state == 2  # the KMIP change survived
        await _check_all(store, keys, plain, 2)

    _run(tmp_path, store_url, scenario)


def test_one_runner_per_instance(tmp_path: Path, store_url: str) -> None:
    async def scenario(store, ring, keys, service, root) -> None:  # type: ignore[no-untyped-def]
        await _seal_objects(store, keys, root, 30)
        await service.rotate("vsphere")
        other = RewrapService(store, ring, keys, batch_size=7)
        assert await store.take_rewrap_lease("vsphere", other.owner, 0.0, 1e12)
        assert await service.run_job("vsphere") is None  # the other process runs it
        await store.release_rewrap_lease("vsphere", other.owner)
        job = await service.run_job("vsphere")
        assert job is not None and job.state == "done"

    _run(tmp_path, store_url, scenario)


def test_resumes_after_the_last_committed_batch(tmp_path: Path, store_url: str) -> None:
    async def scenario(store, ring, keys, service, root) -> None:  # type: ignore[no-untyped-def]
        plain = await _seal_objects(store, keys, root, 30)
        await service.rotate("vsphere")
        real = store.reseal_batch
        calls = []

        async def crash(*args, **kw):  # type: ignore[no-untyped-def]
            if len(calls) == 2:
                raise RuntimeError("the process dies")
            calls.append(1)
            return await real(*args, **kw)

        store.reseal_batch = crash  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await service.run_job("vsphere")
        job = await store.rewrap_job("vsphere")
        assert job is not None and job.state == "running" and job.rewrapped == 14
        store.reseal_batch = real  # type: ignore[method-assign]
        job = await service.run_job("vsphere")
        assert job is not None and job.state == "done" and job.rewrapped == 30
        await _check_all(store, keys, plain, 2)

    _run(tmp_path, store_url, scenario)


def test_follows_a_root_key_rotated_elsewhere(tmp_path: Path, store_url: str) -> None:
    async def scenario(store, ring, keys, service, root) -> None:  # type: ignore[no-untyped-def]
        plain = await _seal_objects(store, keys, root, 5)
        ring.rotate(root)  # e.g. kmipd rootkey rotate, through Key Protect's API
        await service.tick()
        assert (await keys.current("vsphere", root))[0] == 2
        for _ in range(200):
            if (await service.status("vsphere")).state == "done":
                break
            await asyncio.sleep(0.01)
        await _check_all(store, keys, plain, 2)
        await service.tick()  # nothing new: no third version
        assert [r.version for r in await store.wrapping_keys("vsphere")] == [1, 2]

    _run(tmp_path, store_url, scenario)


def test_another_process_s_new_version_is_picked_up(tmp_path: Path, store_url: str) -> None:
    async def scenario(store, ring, keys, service, root) -> None:  # type: ignore[no-untyped-def]
        await _seal_objects(store, keys, root, 1)
        elsewhere = InstanceKeys(store, ring)
        await elsewhere.rotate("vsphere", root)
        assert (await keys.current("vsphere", root))[0] == 1  # still cached here
        await service.tick()
        assert (await keys.current("vsphere", root))[0] == 2

    _run(tmp_path, store_url, scenario)


def test_retire_only_unused_older_versions(tmp_path: Path, store_url: str) -> None:
    async def scenario(store, ring, keys, service, root) -> None:  # type: ignore[no-untyped-def]
        plain = await _seal_objects(store, keys, root, 10)
        await service.rotate("vsphere")
        with pytest.raises(AdminError) as used:
            await service.retire("vsphere", 1)
        assert used.value.code == "wrapping_key_in_use"
        with pytest.raises(AdminError) as newest:
            await service.retire("vsphere", 2)
        assert newest.value.code == "wrapping_key_current"
        await service.run_job("vsphere")
        await service.retire("vsphere", 1)
        assert [r.version for r in await store.wrapping_keys("vsphere")] == [2]
        await _check_all(store, keys, plain, 2)
        with pytest.raises(AdminError) as gone:
            await service.retire("vsphere", 1)
        assert gone.value.kind == "not_found"

    _run(tmp_path, store_url, scenario, retire_grace=0.0)


def test_retire_waits_for_the_grace_period(tmp_path: Path, store_url: str) -> None:
    async def scenario(store, ring, keys, service, root) -> None:  # type: ignore[no-untyped-def]
        await _seal_objects(store, keys, root, 1)
        await service.rotate("vsphere")
        await service.run_job("vsphere")
        with pytest.raises(AdminError) as recent:
            await service.retire("vsphere", 1)
        assert recent.value.code == "wrapping_key_recent"

    _run(tmp_path, store_url, scenario)


def test_one_rotation_makes_one_wrapping_key_while_others_follow(
    tmp_path: Path, store_url: str
) -> None:
    """Rotating is two steps (the root key, then a wrapping key under its new version); a
    process that follows rotations in between (its own loop, or another node's) must not
    make a second wrapping key for the same root key version."""

    async def scenario(store, ring, keys, service, root) -> None:  # type: ignore[no-untyped-def]
        await _seal_objects(store, keys, root, 1)
        other = RewrapService(store, ring, InstanceKeys(store, ring), poll_seconds=0.01)
        try:
            for rotation in range(2, 8):
                instance = (await store.instances())[0]
                rotating = asyncio.ensure_future(service.rotate("vsphere"))

                async def follow(
                    follower: RewrapService, rotating: asyncio.Future, instance: InstanceRecord
                ) -> None:
                    while not rotating.done():
                        await follower.follow_root_key(instance)
                        await asyncio.sleep(0)

                await asyncio.gather(
                    *(follow(f, rotating, instance) for f in (service, other, other))
                )
                assert (await rotating).wrapping_key_version == rotation
                versions = [w.version for w in await store.wrapping_keys("vsphere")]
                assert versions == list(range(1, rotation + 1)), versions
        finally:
            await other.close()

    _run(tmp_path, store_url, scenario)
