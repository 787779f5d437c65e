"""Instance wrapping keys: one AES-256 key per instance and version, wrapped by its root key.

The root key wraps the instance wrapping key; the instance wrapping key seals each object's
material. So a KMIP Get needs the root key only once per instance and process, and the
unwrapped wrapping keys live only in this object's memory. ``forget`` and
``forget_root_key`` drop them (root key deleted or disabled; the composition root calls the
latter from the keyring's change hook and from the periodic check of remote providers).

The root key lives in the instance's named ``RootKeyProvider`` (``builtin`` is the keyring);
wrapping keys are wrapped and unwrapped through it. Rows written before providers existed
hold bare ``Keyring.wrap`` output (no ``KRK1`` header): they still open through the keyring.
For built-in root keys every use also checks the key's state in the keyring (a ``stat`` of
its file, read again when another process changed it), so a root key deleted or disabled
anywhere stops its instances at once: sealing needs it Active, opening Active or
Deactivated, as Key Protect allows wrap and unwrap. Provider errors become
``RootKeyUnavailable``.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Mapping

from kmipd.keys import envelope
from kmipd.keys.keyring import Keyring, KeyringError
from kmipd.keys.providers.base import MAGIC, KeyNotUsable, ProviderError, RootKeyProvider
from kmipd.keys.providers.builtin import KeyringProvider
from kmipd.store.records import WrappingKeyRecord
from kmipd.store.store import Store, StoreError

BUILTIN = "builtin"


class RootKeyUnavailable(Exception):
    """The instance's root key cannot unwrap its wrapping key (deleted, disabled, missing)."""


def _aad(instance: str, version: int) -> bytes:
    parts = [b"kmipd-instance-wrapping-key-v1", instance.encode(), str(version).encode()]
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


class InstanceKeys:
    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        providers: Mapping[str, RootKeyProvider] | None = None,
    ) -> None:
        self._store = store
        self._keyring = keyring
        self._providers: dict[str, RootKeyProvider] = {BUILTIN: KeyringProvider(keyring)}
        self._providers.update(providers or {})
        self._root_provider: dict[str, str] = {}  # provider name of each root key seen
        self._keys: dict[tuple[str, int], bytes] = {}
        self._roots: dict[tuple[str, int], str] = {}  # root key id of each cached key
        self._current: dict[str, int] = {}
        self._lock = asyncio.Lock()

    def forget(self, instance: str | None = None) -> None:
        for key in [k for k in list(self._keys) if instance is None or k[0] == instance]:
            self._keys.pop(key, None)
            self._roots.pop(key, None)
        if instance is None:
            self._current.clear()
        else:
            self._current.pop(instance, None)

    def forget_root_key(self, root_key_id: str) -> None:
        """Drop every cached wrapping key that ``root_key_id`` wrapped (safe from any thread)."""
        for key, root in list(self._roots.items()):
            if root == root_key_id:
                self._keys.pop(key, None)
                self._roots.pop(key, None)
                self._current.pop(key[0], None)

    @property
    def providers(self) -> Mapping[str, RootKeyProvider]:
        """The root key providers by name (``builtin`` is the keyring)."""
        return self._providers

    def _provider(self, name: str) -> RootKeyProvider:
        provider = self._providers.get(name)
        if provider is None:
            raise RootKeyUnavailable(f"root key provider {name!r} is not configured")
        return provider

    async def _instance_provider(self, instance: str) -> str:
        for record in await self._store.instances():
            if record.name == instance:
                self._root_provider[record.root_key_id] = record.provider
                return record.provider
        return BUILTIN

    def _check(self, root_key_id: str, *, for_wrap: bool) -> None:
        if self._root_provider.get(root_key_id, BUILTIN) != BUILTIN:
            return  # remote keys: the periodic check calls forget_root_key
        try:
            self._keyring.check(root_key_id, for_wrap=for_wrap)
        except KeyringError as exc:
            self.forget_root_key(root_key_id)
            raise RootKeyUnavailable(str(exc)) from None

    async def current(self, instance: str, root_key_id: str) -> tuple[int, bytes]:
        """The newest wrapping key of ``instance``, made on first use."""
        version = self._current.get(instance)
        cached = self._keys.get((instance, version)) if version is not None else None
        if version is not None and cached is not None:
            self._check(self._roots.get((instance, version), root_key_id), for_wrap=True)
            return version, cached
        async with self._lock:
            records = await self._store.wrapping_keys(instance)
            if not records:
                records = [await self._create(instance, root_key_id, 1)]
            newest = records[-1]
            self._root_provider[newest.root_key_id] = newest.provider
            self._check(newest.root_key_id, for_wrap=True)
            key = await self._unwrap(newest)
            self._current[instance] = newest.version
            return newest.version, key

    async def key(self, instance: str, version: int) -> bytes:
        cached = self._keys.get((instance, version))
        root = self._roots.get((instance, version))
        if cached is not None and root is not None:
            self._check(root, for_wrap=False)
            return cached
        for record in await self._store.wrapping_keys(instance):
            if record.version == version:
                return await self._unwrap(record)
        raise RootKeyUnavailable(f"instance {instance} has no wrapping key version {version}")

    async def _unwrap(self, record: WrappingKeyRecord) -> bytes:
        self._root_provider[record.root_key_id] = record.provider
        aad = _aad(record.instance, record.version)
        try:
            if record.wrapped.startswith(MAGIC):
                provider = self._provider(record.provider)
                key = await provider.unwrap(record.wrapped, aad)
            elif record.provider == BUILTIN:  # legacy: bare Keyring.wrap output
                key = await asyncio.to_thread(
                    self._keyring.unwrap, record.root_key_id, record.wrapped, aad
                )
            else:
                raise RootKeyUnavailable("the wrapping key's blob names no root key")
        except KeyNotUsable as exc:
            self.forget_root_key(record.root_key_id)
            raise RootKeyUnavailable(str(exc)) from None
        except (KeyringError, ProviderError, ValueError) as exc:
            raise RootKeyUnavailable(str(exc)) from None
        self._keys[(record.instance, record.version)] = key
        self._roots[(record.instance, record.version)] = record.root_key_id
        return key

    async def _create(self, instance: str, root_key_id: str, version: int) -> WrappingKeyRecord:
        key = envelope.new_key()
        name = await self._instance_provider(instance)
        try:
            wrapped = await self._provider(name).wrap(root_key_id, key, _aad(instance, version))
        except KeyNotUsable as exc:
            self.forget_root_key(root_key_id)
            raise RootKeyUnavailable(str(exc)) from None
        except (ProviderError, ValueError) as exc:
            raise RootKeyUnavailable(str(exc)) from None
        record = WrappingKeyRecord(
            instance, version, root_key_id, wrapped, int(time.time()), provider=name
        )
        try:
            await self._store.add_wrapping_key(record)
        except StoreError:
            # Another node made it first; use theirs.
            for existing in await self._store.wrapping_keys(instance):
                if existing.version == version:
                    return existing
            raise
        return record

    # --- rotation (used by kmipd.service.rewrap) ----------------------------------------

    async def rotate(self, instance: str, root_key_id: str) -> int:
        """A new wrapping key version, wrapped under the root key's newest version, used by
        this process for every seal from now on; its version number."""
        async with self._lock:
            records = await self._store.wrapping_keys(instance)
            version = records[-1].version + 1 if records else 1
            self._check(root_key_id, for_wrap=True)
            record = await self._create(instance, root_key_id, version)
            await self._unwrap(record)
            self._current[instance] = record.version
            return record.version

    def follow_newest(self, instance: str, newest: int) -> None:
        """Seal under ``newest`` from now on if it is newer than the cached current version
        (made by another process): the next ``current`` reads it from the store."""
        version = self._current.get(instance)
        if version is not None and version < newest:
            self._current.pop(instance, None)
