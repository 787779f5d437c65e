"""The rotation schedule: due instances are rotated by the one holder of the schedule's lease."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from kmipd.keys.instance_keys import InstanceKeys
from kmipd.keys.keyring import Keyring, KeyRules
from kmipd.service.rewrap import DAY, RewrapService
from kmipd.store.records import InstanceRecord
from kmipd.store.store import Store


def _instance(records: list[InstanceRecord], name: str) -> InstanceRecord:
    return next(r for r in records if r.name == name)


def test_due_instances_are_rotated_once_per_period(tmp_path: Path, store_url: str) -> None:
    async def main() -> None:
        store = Store.from_url(store_url, base=tmp_path)
        await store.open()
        ring = Keyring.in_data_dir(tmp_path, store_url=store_url, rules=KeyRules(action_delay=0))
        keys = InstanceKeys(store, ring)
        created = int(time.time()) - 10 * 86400
        await store.add_instance(InstanceRecord("sched", ring.create("a"), created))
        await store.add_instance(InstanceRecord("never", ring.create("b"), created))
        service = RewrapService(store, ring, keys, poll_seconds=0.01)
        try:
            assert await service.scheduled_rotations() == []  # no schedule: never
            assert await store.set_rotation_days("sched", 7)
            assert not await store.set_rotation_days("missing", 7)
            now = time.time()
            assert await service.scheduled_rotations(now) == ["sched"]
            record = _instance(await store.instances(), "sched")
            assert record.rotation_days == 7 and record.last_rotated is not None
            assert (await service.status("sched")).current_version == 1
            assert (await store.rewrap_job("sched")) is not None  # the rotation started it
            assert await service.scheduled_rotations(now + 6.9 * DAY) == []
            assert await service.scheduled_rotations(now + 7.1 * DAY) == ["sched"]
            assert (await service.status("sched")).current_version == 2
            # A fraction of a day works.
            assert await store.set_rotation_days("sched", 1 / DAY)
            await asyncio.sleep(1.1)
            assert await service.scheduled_rotations() == ["sched"]
            # A manual rotation restarts the clock; off means off.
            assert await store.set_rotation_days("sched", 1.0)
            await service.rotate("sched")
            assert await service.scheduled_rotations(time.time() + 0.9 * DAY) == []
            assert await store.set_rotation_days("sched", None)
            assert await service.scheduled_rotations(time.time() + 99 * DAY) == []
            assert _instance(await store.instances(), "never").last_rotated is None
        finally:
            await service.close()
            await store.close()

    asyncio.run(main())


def test_one_runner_across_processes(tmp_path: Path, store_url: str) -> None:
    """Two nodes (each its own store and keyring on one database) check the schedule at once."""

    async def main() -> None:
        store = Store.from_url(store_url, base=tmp_path)
        other_store = Store.from_url(store_url, base=tmp_path)
        await store.open()
        await other_store.open()
        ring = Keyring.in_data_dir(tmp_path, store_url=store_url, rules=KeyRules(action_delay=0))
        other_ring = Keyring.in_data_dir(
            tmp_path, store_url=store_url, rules=KeyRules(action_delay=0)
        )
        await store.add_instance(InstanceRecord("sched", ring.create("a"), 0))
        await store.set_rotation_days("sched", 1.0)
        first = RewrapService(store, ring, InstanceKeys(store, ring), schedule_check_seconds=60)
        second = RewrapService(
            other_store,
            other_ring,
            InstanceKeys(other_store, other_ring),
            schedule_check_seconds=60,
        )
        try:
            results = await asyncio.gather(
                first.scheduled_rotations(), second.scheduled_rotations()
            )
            assert sorted(results) == [[], ["sched"]]  # exactly one rotated
            holder, other = (first, second) if results[0] else (second, first)
            future = time.time() + 2 * DAY
            assert await other.scheduled_rotations(future) == []  # the lease is held
            await holder.close()  # releases it
            assert await other.scheduled_rotations(future) == ["sched"]
            assert (await other.status("sched")).current_version == 2
        finally:
            await first.close()
            await second.close()
            await store.close()
            await other_store.close()
            ring.close()
            other_ring.close()

    asyncio.run(main())


def test_expired_lease_is_taken_over(tmp_path: Path, store_url: str) -> None:
    async def main() -> None:
        store = Store.from_url(store_url, base=tmp_path)
        await store.open()
        try:
            now = time.time()
            assert await store.take_lease("x", "a", now, now + 5)
            assert await store.take_lease("x", "a", now, now + 5)  # renewed
            assert not await store.take_lease("x", "b", now, now + 5)
            assert await store.take_lease("x", "b", now + 6, now + 11)  # expired: taken over
            await store.release_lease("x", "a")  # not a's any more: no effect
            assert not await store.take_lease("x", "a", now + 7, now + 12)
        finally:
            await store.close()

    asyncio.run(main())


def test_old_database_gets_the_schedule_columns(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "kmipd.db")
    db.execute(
        "CREATE TABLE instances (name TEXT PRIMARY KEY, root_key_id TEXT NOT NULL, "
        "created INTEGER NOT NULL)"
    )
    db.execute("INSERT INTO instances VALUES ('old', 'rk', 5)")
    db.commit()
    db.close()

    async def main() -> None:
        store = Store.sqlite(tmp_path / "kmipd.db")
        await store.open()
        try:
            (record,) = await store.instances()
            assert (record.name, record.rotation_days, record.last_rotated) == ("old", None, None)
            assert await store.set_rotation_days("old", 0.5)
            assert (await store.instances())[0].rotation_days == 0.5
        finally:
            await store.close()

    asyncio.run(main())
