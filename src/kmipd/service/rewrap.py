"""Online rotation of an instance's keys, and the re-wrap job that follows it.

**Rotation.** Rotating an instance's root key (``POST /admin/v1/instances/{name}/rotate``, or
``kmipd rootkey rotate`` / Key Protect's rotate action on the root key it is bound to) leads to
a new *instance wrapping key* version, wrapped under the new root key version. The process
that rotates seals under it at once; every serving process checks, every ``poll_seconds``,
whether an instance's root key has a version newer than the one its newest wrapping key is
wrapped under (then makes the new wrapping key version; the store's primary key makes two
processes agree on one), and whether another process made a newer wrapping key (then seals
under it from then on). Objects sealed under older versions keep opening with them.

**Re-wrap.** The job moves every sealed body of the instance to the newest wrapping key
version, in batches of ``batch_size`` objects in ``seq`` order: open with the old version, seal
with the new, and write each body back only if the row's revision is unchanged
(compare-and-swap; a lost write is read again and redone, so a concurrent KMIP change is never
overwritten, and a KMIP writer that read the row before retries). A batch's writes and the
job's progress (``last_seq``, counts) are one transaction, so after a crash the job resumes
after the last batch that committed. One runner per instance in all processes: the runner
holds a lease in the job's row (renewed by every batch; taken over when it has expired). When
a pass ends, bodies still under older versions (sealed by a process that had not yet seen the
rotation) make it run another pass. The job is idempotent: bodies already on the target are
skipped.

**Retirement.** A wrapping key version that no sealed body uses any more, that is not the
newest, can be deleted (``DELETE /admin/v1/instances/{name}/wrapping-keys/{version}``); the
check and the delete are one statement. Refused while bodies use it, and for ``retire_grace``
seconds after a newer version was made (so that every process has stopped sealing under it).

**Schedule.** An instance may have a rotation schedule, ``rotation_days`` (set with ``PATCH
/admin/v1/instances/{name}``; a float, so a fraction of a day works). Every
``schedule_check_seconds``, the one process that holds the ``rotation-schedule`` lease (a row
of the store's ``leases`` table, renewed by every check, taken over when it has expired)
rotates every instance whose last rotation (its ``last_rotated``, else its newest rotated
wrapping key, else its creation) is older than that; the rotation starts the re-wrap job. A
rotation that fails (root key unavailable) is tried again at the next check.

Nothing here logs or returns key material; the plaintext of a body exists only between its
opening and its sealing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from kmipd.keys import envelope
from kmipd.keys.instance_keys import InstanceKeys, RootKeyUnavailable
from kmipd.keys.keyring import Keyring, KeyringError
from kmipd.keys.providers.base import (
    MAGIC,
    KeyNotUsable,
    ProviderError,
    WrappedKeyInvalid,
    parse_blob,
)
from kmipd.keys.providers.registry import BUILTIN
from kmipd.service.admin import AdminError
from kmipd.store.database import log_failure
from kmipd.store.records import InstanceRecord, WrappingKeyRecord
from kmipd.store.rewrap_queries import DONE, RUNNING, RewrapJob
from kmipd.store.store import Store, StoreError

log = logging.getLogger(__name__)

BATCH_SIZE = 250
POLL_SECONDS = 1.0
LEASE_SECONDS = 10.0
RETIRE_GRACE_SECONDS = 60.0
MAX_PASSES = 5
SCHEDULE_CHECK_SECONDS = 60.0
SCHEDULE_LEASE = "rotation-schedule"
# One rotation of an instance at a time, across processes and nodes: rotating the root key
# and making the wrapping key under its new version are two steps, and a process that
# follows a rotation made elsewhere must not see the first without the second.
ROTATION_LEASE_SECONDS = 30.0
ROTATION_WAIT_SECONDS = 10.0
DAY = 86400.0
_LOST_WRITE_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class WrappingKeyVersion:
    version: int
    root_key_version: int | None
    created: int
    objects: int  # sealed bodies that use it
    current: bool


@dataclass(frozen=True, slots=True)
class RewrapStatus:
    instance: str
    state: str  # idle (never ran), running or done
    target_version: int | None
    current_version: int | None
    objects_on_target: int
    objects_remaining: int  # sealed bodies on older versions
    rewrapped: int
    skipped: int
    retries: int
    passes: int
    started: float | None
    updated: float | None
    finished: float | None
    runner_active: bool
    error: str | None
    versions: list[WrappingKeyVersion]

    @property
    def percent(self) -> float:
        total = self.objects_on_target + self.objects_remaining
        return 100.0 if total == 0 else 100.0 * self.objects_on_target / total


@dataclass(frozen=True, slots=True)
class Rotation:
    instance: str
    root_key_id: str
    root_key_version: int
    wrapping_key_version: int


class RewrapService:
    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        keys: InstanceKeys,
        *,
        batch_size: int = BATCH_SIZE,
        poll_seconds: float = POLL_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        retire_grace: float = RETIRE_GRACE_SECONDS,
        pause: float = 0.0,
        schedule_check_seconds: float = SCHEDULE_CHECK_SECONDS,
        changed: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        # Tells the other nodes (kind, subject): kmipd.service.cluster_events.
        self._changed = changed
        self._keyring = keyring
        self._keys = keys
        self._batch = batch_size
        self._poll = poll_seconds
        self._lease = lease_seconds
        self._grace = retire_grace
        self._pause = pause
        self._schedule_check = schedule_check_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._runners: dict[str, asyncio.Task[RewrapJob | None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._schedule_task: asyncio.Task[None] | None = None
        self._rotating: dict[str, asyncio.Lock] = {}

    async def _tell_others(self, kind: str, subject: str) -> None:
        if self._changed is None:
            return
        try:
            await self._changed(kind, subject)
        except StoreError as exc:  # the change is made; other nodes see it by their checks
            log.warning("could not tell the other nodes of %s %s: %s", kind, subject, exc)

    # --- instances and their wrapping keys ----------------------------------------------

    async def _instance(self, name: str) -> InstanceRecord:
        for record in await self._store.instances():
            if record.name == name:
                return record
        raise AdminError("not_found", "instance_not_found", f"no instance named {name!r}")

    def _root_versions(self, instance: InstanceRecord) -> int | None:
        """How many versions a built-in root key has; None when the keyring cannot say, and
        for other providers (asking a remote service every second would be a load of its
        own: their keys are rotated through kmipd's rotate action, which needs no polling)."""
        if instance.provider != BUILTIN:
            return None
        try:
            return self._keyring.info(instance.root_key_id).versions
        except (KeyringError, LookupError, ValueError):
            return None

    @contextlib.asynccontextmanager
    async def _rotation(self, name: str, wait: float) -> AsyncIterator[bool]:
        """Hold the instance's rotation (a lock here and a lease in the store); yields False
        if another coroutine, process or node still holds it after ``wait`` seconds."""
        local = self._rotating.setdefault(name, asyncio.Lock())
        lease = f"rotation:{name}"
        if wait:
            try:
                await asyncio.wait_for(local.acquire(), wait)
            except TimeoutError:
                yield False
                return
        elif local.locked():
            yield False
            return
        else:
            await local.acquire()  # free: taken at once
        try:
            deadline = time.monotonic() + wait
            while not await self._store.take_lease(
                lease, self.owner, time.time(), time.time() + ROTATION_LEASE_SECONDS
            ):
                if time.monotonic() >= deadline:
                    yield False
                    return
                await asyncio.sleep(0.05)
            try:
                yield True
            finally:
                await self._store.release_lease(lease, self.owner)
        finally:
            local.release()

    async def rotate(self, name: str) -> Rotation:
        """Rotate the instance's root key in its provider, then make its new wrapping key
        version and start the re-wrap job. New seals on this process use it at once."""
        async with self._rotation(name, ROTATION_WAIT_SECONDS) as held:
            if not held:
                raise AdminError(
                    "conflict",
                    "rotation_in_progress",
                    f"instance {name!r} is being rotated elsewhere; try again in a moment",
                )
            return await self._rotate(name)

    async def _rotate(self, name: str) -> Rotation:
        instance = await self._instance(name)
        if instance.provider == BUILTIN:
            try:
                root_version = self._keyring.rotate(instance.root_key_id)
            except KeyringError as exc:
                raise AdminError("conflict", "root_key_unavailable", exc.message) from None
        else:
            provider = self._keys.providers.get(instance.provider)
            if provider is None:
                raise AdminError(
                    "conflict",
                    "root_key_unavailable",
                    f"root key provider {instance.provider!r} is not configured",
                )
            try:
                root_version = await provider.rotate(instance.root_key_id)
            except (KeyNotUsable, ProviderError) as exc:
                raise AdminError(
                    "conflict",
                    "root_key_unavailable",
                    f"root key provider {instance.provider!r} cannot rotate the key: "
                    f"{type(exc).__name__}",
                ) from None
        version = await self._new_wrapping_key(instance, root_version)
        return Rotation(name, instance.root_key_id, root_version, version)

    async def root_key_action(self, name: str, action: str) -> tuple[InstanceRecord, str]:
        """Disable, enable or delete the instance's root key in whatever provider holds it;
        (the instance, the key's state afterwards). Disabling or deleting stops the instance
        at once: its unwrapped wrapping keys are dropped here, and every use checks again."""
        instance = await self._instance(name)
        provider = self._keys.providers.get(instance.provider)
        if provider is None:
            raise AdminError(
                "conflict",
                "root_key_unavailable",
                f"root key provider {instance.provider!r} is not configured",
            )
        try:
            if action == "disable":
                await provider.disable(instance.root_key_id)
            elif action == "enable":
                await provider.enable(instance.root_key_id)
            elif action == "delete":
                await provider.delete(instance.root_key_id)
            else:  # pragma: no cover - the routes pass one of the three
                raise ValueError(action)
        except (KeyNotUsable, ProviderError) as exc:
            raise AdminError(
                "conflict",
                "root_key_action_refused",
                f"root key provider {instance.provider!r} refused to {action} the key: "
                f"{type(exc).__name__}",
            ) from None
        if action != "enable":
            self._keys.forget_root_key(instance.root_key_id)
        await self._tell_others("root_key", instance.root_key_id)
        try:
            state = (await provider.status(instance.root_key_id)).state.value
        except ProviderError:
            state = "unknown"
        log.info(
            "instance %s: root key %s %sd in provider %s",
            name,
            instance.root_key_id,
            action,
            instance.provider,
        )
        return instance, state

    async def _new_wrapping_key(self, instance: InstanceRecord, root_version: int) -> int:
        try:
            version = await self._keys.rotate(instance.name, instance.root_key_id)
            await self._tell_others("wrapping_key", instance.name)
        except RootKeyUnavailable as exc:
            raise AdminError("conflict", "root_key_unavailable", str(exc)) from None
        await self._store.set_root_key_version(instance.name, version, root_version)
        await self._store.set_last_rotated(instance.name, time.time())
        log.info(
            "instance %s: new wrapping key version %d under root key %s version %d",
            instance.name,
            version,
            instance.root_key_id,
            root_version,
        )
        await self.start(instance.name)
        return version

    async def follow_root_key(self, instance: InstanceRecord) -> int | None:
        """Make a new wrapping key version if the root key has a newer version than the one
        that wraps the newest wrapping key (rotated elsewhere); the new version, if any.
        Skipped while a rotation of the instance is under way (the next tick looks again)."""
        async with self._rotation(instance.name, 0) as held:
            if not held:
                return None
            return await self._follow_root_key(instance)

    async def _follow_root_key(self, instance: InstanceRecord) -> int | None:
        root_versions = self._root_versions(instance)
        if root_versions is None:
            return None
        records = await self._store.wrapping_keys(instance.name)
        if not records:
            return None  # made under the root key's newest version on first use
        newest = records[-1]
        recorded = (await self._store.root_key_versions(instance.name)).get(newest.version)
        if recorded is None:
            recorded = _wrapped_under(newest) or root_versions
            await self._store.set_root_key_version(instance.name, newest.version, recorded)
        if root_versions <= recorded:
            self._keys.follow_newest(instance.name, newest.version)
            return None
        try:
            return await self._new_wrapping_key(instance, root_versions)
        except AdminError as exc:
            log.warning(
                "instance %s: cannot follow its root key's rotation: %s", instance.name, exc
            )
            return None

    # --- the job ------------------------------------------------------------------------

    async def start(self, name: str) -> RewrapJob:
        """Start (or resume, or run once more) the instance's re-wrap to its newest version."""
        await self._instance(name)
        records = await self._store.wrapping_keys(name)
        if not records:
            raise AdminError(
                "conflict", "no_wrapping_key", f"instance {name!r} has sealed nothing yet"
            )
        job = await self._store.start_rewrap_job(name, records[-1].version, time.time())
        self._wake.set()
        return job

    async def status(self, name: str) -> RewrapStatus:
        await self._instance(name)
        job = await self._store.rewrap_job(name)
        records = await self._store.wrapping_keys(name)
        root_versions = await self._store.root_key_versions(name)
        in_use = await self._store.sealed_versions(name)
        current = records[-1].version if records else None
        target = job.target_version if job is not None else current
        versions = [
            WrappingKeyVersion(
                r.version,
                root_versions.get(r.version) or _wrapped_under(r),
                r.created,
                in_use.get(r.version, 0),
                r.version == current,
            )
            for r in records
        ]
        on_target = sum(n for v, n in in_use.items() if target is not None and v >= target)
        remaining = sum(n for v, n in in_use.items() if target is None or v < target)
        now = time.time()
        return RewrapStatus(
            instance=name,
            state=job.state if job is not None else "idle",
            target_version=target,
            current_version=current,
            objects_on_target=on_target,
            objects_remaining=remaining,
            rewrapped=job.rewrapped if job else 0,
            skipped=job.skipped if job else 0,
            retries=job.retries if job else 0,
            passes=job.passes if job else 0,
            started=job.started if job else None,
            updated=job.updated if job else None,
            finished=job.finished if job else None,
            runner_active=bool(job and job.lease_owner and (job.lease_until or 0) > now),
            error=job.error if job else None,
            versions=versions,
        )

    async def retire(self, name: str, version: int) -> None:
        """Delete wrapping key ``version`` of the instance; refused while it is needed."""
        await self._instance(name)
        records = await self._store.wrapping_keys(name)
        found = next((r for r in records if r.version == version), None)
        if found is None:
            raise AdminError(
                "not_found", "wrapping_key_not_found", f"{name!r} has no wrapping key {version}"
            )
        if found is records[-1]:
            raise AdminError(
                "conflict", "wrapping_key_current", "the newest wrapping key cannot be retired"
            )
        newer = records[records.index(found) + 1]
        if time.time() - newer.created < self._grace:
            raise AdminError(
                "conflict",
                "wrapping_key_recent",
                f"version {newer.version} was made less than {self._grace:g} seconds ago; "
                "wait until every process seals under it",
            )
        if not await self._store.retire_wrapping_key(name, version):
            used = (await self._store.sealed_versions(name)).get(version, 0)
            raise AdminError(
                "conflict",
                "wrapping_key_in_use",
                f"{used} objects are still sealed under version {version}; run the re-wrap "
                "job first",
            )
        self._keys.forget(name)
        await self._tell_others("wrapping_key", name)
        log.info("instance %s: wrapping key version %d retired", name, version)

    async def run_job(self, name: str) -> RewrapJob | None:
        """Run the instance's job to its end if this process can take its lease (else
        None). Safe to call concurrently from anywhere: the lease admits one runner."""
        now = time.time()
        if not await self._store.take_rewrap_lease(name, self.owner, now, now + self._lease):
            return None
        try:
            return await self._run(name)
        except Exception as exc:
            log.error("instance %s: the re-wrap job stopped: %s", name, type(exc).__name__)
            await self._store.update_rewrap_job(
                name, self.owner, error=f"stopped: {type(exc).__name__}", updated=time.time()
            )
            raise
        finally:
            await self._store.release_rewrap_lease(name, self.owner)

    async def _run(self, name: str) -> RewrapJob | None:
        while True:
            job = await self._store.rewrap_job(name)
            if job is None or job.state != RUNNING or job.lease_owner != self.owner:
                return job
            target = job.target_version
            try:
                target_key = await self._keys.key(name, target)
            except RootKeyUnavailable:
                await self._store.update_rewrap_job(
                    name, self.owner, error="the root key is unavailable", updated=time.time()
                )
                return job
            rows = await self._store.sealed_batch(name, job.last_seq, self._batch)
            if not rows:
                if not await self._end_pass(job):
                    return await self._store.rewrap_job(name)
                continue
            writes: list[tuple[str, int, bytes]] = []
            skipped = 0
            for row in rows:
                sealed = await self._reseal(name, row.uid, row.sealed, target, target_key)
                if sealed is None:
                    skipped += 1
                else:
                    writes.append((row.uid, row.revision, sealed))
            lost = await self._store.reseal_batch(
                name,
                self.owner,
                writes,
                last_seq=rows[-1].seq,
                skipped=skipped,
                now=time.time(),
                lease_until=time.time() + self._lease,
            )
            if lost is None:
                return await self._store.rewrap_job(name)  # lost the lease
            if lost:
                await self._redo(name, lost, target, target_key)
            await asyncio.sleep(self._pause)  # let KMIP requests in between batches

    async def _reseal(
        self, name: str, uid: str, sealed: bytes, target: int, target_key: bytes
    ) -> bytes | None:
        """The body sealed under ``target``; None if it already is (or cannot be opened:
        it then stays, is counted as remaining, and its version cannot be retired)."""
        try:
            version = envelope.sealed_version(sealed)
            if version >= target:
                return None
            old_key = await self._keys.key(name, version)
            plaintext = envelope.unseal(old_key, name, uid, sealed)
        except envelope.SealError:
            log.error("object %s of instance %s: stored material fails its check", uid, name)
            return None
        try:
            return envelope.seal(target_key, target, name, uid, plaintext)
        finally:
            del plaintext

    async def _redo(self, name: str, uids: list[str], target: int, target_key: bytes) -> None:
        """Read again and re-seal the bodies whose write lost to a concurrent change."""
        for _ in range(_LOST_WRITE_ATTEMPTS):
            writes = []
            for row in await self._store.sealed_rows(name, uids):
                sealed = await self._reseal(name, row.uid, row.sealed, target, target_key)
                if sealed is not None:
                    writes.append((row.uid, row.revision, sealed))
            if not writes:
                return
            lost = await self._store.reseal_batch(
                name, self.owner, writes, last_seq=None, skipped=0, now=time.time()
            )
            if not lost:
                return
            uids = lost
            await asyncio.sleep(0.01)
        # Still contended: the end-of-pass check finds it and runs another pass.

    async def _end_pass(self, job: RewrapJob) -> bool:
        """At the end of a pass: done, or another pass (True) for bodies sealed under older
        versions meanwhile."""
        in_use = await self._store.sealed_versions(job.instance)
        remaining = sum(n for v, n in in_use.items() if v < job.target_version)
        now = time.time()
        if remaining and job.passes + 1 < MAX_PASSES:
            await asyncio.sleep(self._poll)  # every process follows the new version by then
            return await self._store.update_rewrap_job(
                job.instance,
                self.owner,
                last_seq=0,
                passes=job.passes + 1,
                updated=now,
                lease_until=time.time() + self._lease,
            )
        error = (
            f"{remaining} objects could not be re-sealed (they fail their integrity check)"
            if remaining
            else None
        )
        await self._store.update_rewrap_job(
            job.instance,
            self.owner,
            state=DONE,
            passes=job.passes + 1,
            finished=now,
            updated=now,
            error=error,
        )
        log.info(
            "instance %s: re-wrap to wrapping key version %d done (%d remaining)",
            job.instance,
            job.target_version,
            remaining,
        )
        return False

    # --- the rotation schedule ----------------------------------------------------------

    async def last_rotation(self, instance: InstanceRecord) -> float:
        """When the instance's keys were last rotated (its creation if never)."""
        last = float(instance.created)
        if instance.last_rotated is not None:
            last = max(last, instance.last_rotated)
        records = await self._store.wrapping_keys(instance.name)
        if records and records[-1].version > 1:  # rotated before last_rotated was recorded
            last = max(last, float(records[-1].created))
        return last

    async def scheduled_rotations(self, now: float | None = None) -> list[str]:
        """Rotate the instances whose schedule is due, if this process holds the schedule's
        lease; the names of those rotated."""
        now = time.time() if now is None else now
        until = time.time() + self._schedule_check + self._lease
        if not await self._store.take_lease(SCHEDULE_LEASE, self.owner, time.time(), until):
            return []
        rotated = []
        for instance in await self._store.instances():
            days = instance.rotation_days
            if days is None or days <= 0:
                continue
            if now - await self.last_rotation(instance) < days * DAY:
                continue
            try:
                rotation = await self.rotate(instance.name)
            except Exception as exc:
                log.warning(
                    "instance %s: scheduled rotation failed, trying again later: %s",
                    instance.name,
                    exc if isinstance(exc, AdminError) else type(exc).__name__,
                )
                continue
            log.info(
                "instance %s: scheduled rotation (every %g days) to wrapping key version %d",
                instance.name,
                days,
                rotation.wrapping_key_version,
            )
            rotated.append(instance.name)
        return rotated

    async def schedule_forever(self) -> None:
        while True:
            try:
                await self.scheduled_rotations()
            except Exception:
                log_failure(log, "the rotation schedule check failed; trying again")
            await asyncio.sleep(self._schedule_check)

    # --- the background loop of a serving process ---------------------------------------

    async def tick(self) -> None:
        """Follow rotations made elsewhere, and run the jobs nobody runs."""
        for instance in await self._store.instances():
            try:
                await self.follow_root_key(instance)
            except Exception:
                log_failure(log, "instance %s: checking its root key failed", instance.name)
        names = {i.name for i in await self._store.instances()}
        for job in await self._store.rewrap_jobs(RUNNING):
            if job.instance not in names:
                await self._store.delete_rewrap_job(job.instance)
                continue
            runner = self._runners.get(job.instance)
            if runner is not None and not runner.done():
                continue
            if job.lease_owner not in (None, self.owner) and (job.lease_until or 0) > time.time():
                continue  # another process runs it
            self._runners[job.instance] = asyncio.get_running_loop().create_task(
                self.run_job(job.instance), name=f"rewrap-{job.instance}"
            )

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log_failure(log, "the re-wrap loop failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()

    def wake(self) -> None:
        """Check at once (safe from any thread of the running loop's process)."""
        self._wake.set()

    def start_background(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(
            self.run_forever(), name="rewrap-loop"
        )
        self._schedule_task = asyncio.get_running_loop().create_task(
            self.schedule_forever(), name="rotation-schedule"
        )

    async def close(self) -> None:
        tasks = [
            t
            for t in [self._loop_task, self._schedule_task, *self._runners.values()]
            if t is not None
        ]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._runners.clear()
        self._loop_task = self._schedule_task = None
        with contextlib.suppress(Exception):
            await self._store.release_lease(SCHEDULE_LEASE, self.owner)


def _wrapped_under(record: WrappingKeyRecord) -> int | None:
    """The root key version that wraps a wrapping key: the provider blob header's version
    (``KRK1|kind|mechanism|keyid|version|body``), or a legacy built-in keyring blob's
    (``format(1)=1 | version``)."""
    if record.wrapped.startswith(MAGIC):
        try:
            return parse_blob(record.wrapped)[0].version
        except WrappedKeyInvalid:
            return None
    if getattr(record, "provider", "builtin") != "builtin" or len(record.wrapped) < 5:
        return None
    fmt, version = struct.unpack_from(">BI", record.wrapped, 0)
    return int(version) if fmt == 1 and version >= 1 else None
