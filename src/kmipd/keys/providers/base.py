"""The root key provider contract: what holds customer root keys and wraps with them.

A provider wraps a short secret (an instance wrapping key, 32 bytes) under a root key and
unwraps it again; it creates, rotates, disables and deletes root keys and reports their
status. Implementations: ``builtin.KeyringProvider`` (the built-in keyring file) and
``pkcs11.Pkcs11Provider`` (an HSM through PKCS#11) and ``keyprotect.KeyProtectProvider`` (a
remote Key Protect-compatible service over HTTPS).
Differences between them are described by a ``Capabilities`` record, never by subclasses.

Every wrapped blob starts with the same header, so a blob names the root key and version that
opens it, and old blobs keep opening after a rotation::

    offset  size  field
    0       4     magic b"KRK1" (format 1)
    4       1     provider kind   (1 keyring, 2 pkcs11, 3 keyprotect)
    5       1     mechanism       (1 AES-256-GCM, 2 RFC 5649 key wrap with padding)
    6       1     n = length of the root key id (1..255)
    7       n     root key id, UTF-8
    7+n     4     root key version, big-endian, 1-based
    11+n    ...   body, defined by the provider and mechanism

The associated data authenticated with the body is ``bound_aad(header, aad)``: a domain
label, every header field but the version, and the caller's AAD. The version only chooses
the key: a changed version selects another key, and the body does not open under it.
Every failure to open a blob (wrong AAD, changed bytes, malformed header, wrong key) raises
the one error ``WrappedKeyInvalid``, whose message says nothing about which check failed.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

MAGIC = b"KRK1"
MAX_PLAINTEXT = 512
_DOMAIN = b"kmipd-root-key-wrap-v1"
_VERSION = struct.Struct(">I")


class ProviderKind(enum.IntEnum):
    KEYRING = 1
    PKCS11 = 2
    KEYPROTECT = 3


class Mechanism(enum.IntEnum):
    AES_GCM = 1  # body: 12-byte nonce, ciphertext, 16-byte tag
    AES_KWP = 2  # body: RFC 5649 output over plaintext || SHA-256(bound AAD)


class KeyState(enum.Enum):
    ACTIVE = "active"  # wraps and unwraps
    DEACTIVATED = "deactivated"  # past its expiration date: unwraps, does not wrap
    DISABLED = "disabled"  # neither, until enabled again
    DELETED = "deleted"  # neither; the provider still knows it (and may restore it)
    MISSING = "missing"  # the provider does not know the key (never made, purged, destroyed)


# --- errors ----------------------------------------------------------------------------------


class ProviderError(Exception):
    """A root key provider failed; subclasses say why. Messages never carry key material."""


class WrappedKeyInvalid(ProviderError):
    """The blob does not open: wrong AAD, changed bytes, malformed, or another key's blob."""

    def __init__(self, message: str = "the wrapped key does not open") -> None:
        super().__init__(message)


class KeyNotUsable(ProviderError):
    """The root key's state does not allow the operation (disabled, deleted, missing, ...)."""

    def __init__(self, key_id: str, state: KeyState, action: str) -> None:
        super().__init__(f"root key {key_id} is {state.value}: it cannot {action}")
        self.key_id = key_id
        self.state = state


class ProviderUnavailable(ProviderError):
    """The provider cannot be reached or logged in to (token absent, wrong PIN, ...)."""


class NotSupported(ProviderError):
    """The provider lacks the capability (see ``Capabilities``)."""


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can do; callers and the contract tests branch on this, not on types."""

    kind: ProviderKind
    mechanism: Mechanism  # what ``wrap`` uses now (``unwrap`` opens any it supports)
    disable: bool  # ``disable``/``enable`` are supported
    restorable_delete: bool  # a deleted key keeps its material for a restore window
    reports_deleted: bool  # ``status`` says DELETED after ``delete`` (else MISSING)
    external_changes: bool  # keys can change outside kmipd: poll ``status`` periodically
    max_plaintext: int = MAX_PLAINTEXT


@dataclass(frozen=True, slots=True)
class RootKeyStatus:
    key_id: str
    state: KeyState
    versions: int  # 0 when MISSING


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str  # for operators; never holds secrets


@dataclass(frozen=True, slots=True)
class BlobHeader:
    kind: ProviderKind
    mechanism: Mechanism
    key_id: str
    version: int

    def encode(self) -> bytes:
        key = self.key_id.encode()
        if not 1 <= len(key) <= 255:
            raise ValueError("a root key id holds 1 to 255 bytes")
        if not 1 <= self.version <= 0xFFFFFFFF:
            raise ValueError("a root key version is 1 to 2**32 - 1")
        return (
            MAGIC + bytes([self.kind, self.mechanism, len(key)]) + key + _VERSION.pack(self.version)
        )


def parse_blob(blob: bytes) -> tuple[BlobHeader, bytes]:
    """The header and the body of a wrapped blob; ``WrappedKeyInvalid`` if malformed."""
    try:
        if blob[:4] != MAGIC:
            raise ValueError
        kind = ProviderKind(blob[4])
        mechanism = Mechanism(blob[5])
        n = blob[6]
        end = 7 + n
        if n == 0 or len(blob) < end + _VERSION.size:
            raise ValueError
        key_id = blob[7:end].decode()
        (version,) = _VERSION.unpack_from(blob, end)
        if version == 0:
            raise ValueError
    except (ValueError, IndexError, UnicodeDecodeError):
        raise WrappedKeyInvalid() from None
    return BlobHeader(kind, mechanism, key_id, version), blob[end + _VERSION.size :]


def _lp(parts: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def bound_aad(header: BlobHeader, aad: bytes) -> bytes:
    """The associated data a provider authenticates with a blob's body (see the module doc)."""
    return _lp(
        [
            _DOMAIN,
            bytes([header.kind, header.mechanism]),
            header.key_id.encode(),
            aad,
        ]
    )


def check_plaintext(plaintext: bytes, capabilities: Capabilities) -> None:
    if not 1 <= len(plaintext) <= capabilities.max_plaintext:
        raise ValueError(f"the key to wrap holds 1 to {capabilities.max_plaintext} bytes")


# --- the interface ---------------------------------------------------------------------------


@runtime_checkable
class RootKeyProvider(Protocol):
    """Root keys in one place (a keyring file, an HSM token, a remote service).

    Async because the remote provider does network I/O; local providers run their blocking
    calls in a worker thread so the event loop never waits on a token or a file lock.
    """

    @property
    def capabilities(self) -> Capabilities: ...

    async def create(self, name: str) -> str:
        """A new active root key (version 1); its stable id."""
        ...

    async def wrap(self, key_id: str, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` wrapped under the newest version of an ACTIVE root key."""
        ...

    async def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext of a blob from ``wrap``, under the version its header names.

        ``WrappedKeyInvalid`` if it does not open; ``KeyNotUsable`` if the root key may not
        unwrap (only ACTIVE and DEACTIVATED keys unwrap).
        """
        ...

    async def rotate(self, key_id: str) -> int:
        """A new version that ``wrap`` uses from now on; the new version number."""
        ...

    async def status(self, key_id: str) -> RootKeyStatus: ...

    async def disable(self, key_id: str) -> None:
        """Stop wrap and unwrap until ``enable`` (``NotSupported`` without the capability)."""
        ...

    async def enable(self, key_id: str) -> None: ...

    async def delete(self, key_id: str) -> None:
        """Delete every version: nothing wraps or unwraps under the key afterwards."""
        ...

    async def health(self) -> Health: ...

    async def close(self) -> None: ...
