"""The built-in keyring (``kmipd.keys.keyring``) as a ``RootKeyProvider``.

The keyring stays what it is (its file, its Key Protect rules, the KMIP path's callers); this
adapter only gives it the provider contract. A blob is the common header (kind KEYRING,
mechanism AES-256-GCM, the key id and the version) followed by ``Keyring.wrap``'s own output
(format byte, version, nonce, ciphertext and tag), sealed with ``bound_aad``.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import TypeVar

from kmipd.keys import keyring as kr
from kmipd.keys.providers.base import (
    BlobHeader,
    Capabilities,
    Health,
    KeyNotUsable,
    KeyState,
    Mechanism,
    ProviderError,
    ProviderKind,
    RootKeyStatus,
    WrappedKeyInvalid,
    bound_aad,
    check_plaintext,
    parse_blob,
)

T = TypeVar("T")

_STATES = {
    kr.PRE_ACTIVE: KeyState.DISABLED,
    kr.ACTIVE: KeyState.ACTIVE,
    kr.SUSPENDED: KeyState.DISABLED,
    kr.DEACTIVATED: KeyState.DEACTIVATED,
    kr.DESTROYED: KeyState.DELETED,
}
_INNER = struct.Struct(">BI")  # the keyring's own head: format, version

CAPABILITIES = Capabilities(
    kind=ProviderKind.KEYRING,
    mechanism=Mechanism.AES_GCM,
    disable=True,
    restorable_delete=True,
    reports_deleted=True,
    external_changes=False,
)


class KeyringProvider:
    def __init__(self, keyring: kr.Keyring) -> None:
        self._keyring = keyring

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    async def _call(self, key_id: str, action: str, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        except kr.UnprocessableCiphertext:
            raise WrappedKeyInvalid() from None
        except (kr.KeyNotFound, kr.KeyDeleted, kr.InvalidKeyState, kr.RootKeyRequired):
            state = self._state(key_id)
            if state in (KeyState.ACTIVE, KeyState.DEACTIVATED):
                raise ProviderError(f"root key {key_id} cannot {action}") from None
            raise KeyNotUsable(key_id, state, action) from None
        except kr.KeyringError as exc:
            raise ProviderError(exc.message) from None

    def _state(self, key_id: str) -> KeyState:
        try:
            record = self._keyring.get(key_id)
        except kr.KeyNotFound:
            return KeyState.MISSING
        if record.extractable:  # a standard key is no root key
            return KeyState.MISSING
        return _STATES.get(record.state, KeyState.DISABLED)

    async def create(self, name: str) -> str:
        return await self._call("(new)", "be created", lambda: self._keyring.create(name))

    async def wrap(self, key_id: str, plaintext: bytes, aad: bytes) -> bytes:
        check_plaintext(plaintext, CAPABILITIES)
        # The version is not part of the bound AAD, so it can come from the keyring's output.
        draft = BlobHeader(ProviderKind.KEYRING, Mechanism.AES_GCM, key_id, 1)
        inner = await self._call(
            key_id, "wrap", lambda: self._keyring.wrap(key_id, plaintext, bound_aad(draft, aad))
        )
        _, version = _INNER.unpack_from(inner, 0)
        header = BlobHeader(ProviderKind.KEYRING, Mechanism.AES_GCM, key_id, version)
        return header.encode() + inner

    async def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        header, inner = parse_blob(blob)
        if (
            header.kind != ProviderKind.KEYRING
            or header.mechanism != Mechanism.AES_GCM
            or len(inner) < _INNER.size
            or _INNER.unpack_from(inner, 0)[1] != header.version
        ):
            raise WrappedKeyInvalid()
        key_id = header.key_id
        return await self._call(
            key_id, "unwrap", lambda: self._keyring.unwrap(key_id, inner, bound_aad(header, aad))
        )

    async def rotate(self, key_id: str) -> int:
        return await self._call(key_id, "rotate", lambda: self._keyring.rotate(key_id))

    async def status(self, key_id: str) -> RootKeyStatus:
        def status() -> RootKeyStatus:
            state = self._state(key_id)
            if state == KeyState.MISSING:
                return RootKeyStatus(key_id, state, 0)
            return RootKeyStatus(key_id, state, self._keyring.info(key_id).versions)

        return await self._call(key_id, "report its status", status)

    async def disable(self, key_id: str) -> None:
        await self._call(key_id, "be disabled", lambda: self._keyring.disable(key_id))

    async def enable(self, key_id: str) -> None:
        await self._call(key_id, "be enabled", lambda: self._keyring.enable(key_id))

    async def delete(self, key_id: str) -> None:
        await self._call(key_id, "be deleted", lambda: self._keyring.delete(key_id))

    async def health(self) -> Health:
        try:
            count = len(await asyncio.to_thread(self._keyring.list))
        except (kr.KeyringError, OSError, ValueError) as exc:
            return Health(False, f"keyring unreadable: {type(exc).__name__}")
        return Health(True, f"keyring readable, {count} root keys")

    async def close(self) -> None:
        return None
