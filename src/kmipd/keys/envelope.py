"""Sealing of object material under an instance wrapping key (AES-256-GCM).

A sealed blob is ``format(1) | wrapping key version(4) | nonce(12) | ciphertext+tag``.
The associated data binds it to its slot: the instance, the object's UID and the wrapping
key version, so a blob copied into another row, or another instance, does not open.
Every failure to open is the same :class:`SealError`, which says nothing about why.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_V1 = 1
_HEAD = struct.Struct(">BI")
NONCE_BYTES = 12
KEY_BYTES = 32


class SealError(Exception):
    """A sealed blob does not open in this slot with this key."""


def _aad(instance: str, uid: str, version: int) -> bytes:
    # Length-prefixed parts, so ("ab", "c") and ("a", "bc") differ.
    parts = [b"kmipd-object-v1", instance.encode(), uid.encode(), str(version).encode()]
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, version: int, instance: str, uid: str, plaintext: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(key).encrypt(nonce, plaintext, _aad(instance, uid, version))
    return _HEAD.pack(FORMAT_V1, version) + nonce + body


def sealed_version(blob: bytes) -> int:
    """The wrapping key version a blob was sealed under."""
    if len(blob) < _HEAD.size + NONCE_BYTES + 16:
        raise SealError("sealed object is malformed")
    fmt, version = _HEAD.unpack_from(blob, 0)
    if fmt != FORMAT_V1:
        raise SealError("sealed object is malformed")
    return int(version)


def unseal(key: bytes, instance: str, uid: str, blob: bytes) -> bytes:
    version = sealed_version(blob)
    nonce = blob[_HEAD.size : _HEAD.size + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(
            nonce, blob[_HEAD.size + NONCE_BYTES :], _aad(instance, uid, version)
        )
    except InvalidTag:
        raise SealError("sealed object does not open with this key in this slot") from None
