"""The keyring master key: the AES-256 key that encrypts every key's material in the keyring.

It comes from the environment variable ``KMIPD_KEYRING_KEY`` (base64 of 32 bytes) when that
is set, else from ``DIR/keyring/master.key`` (base64 text, mode 0600). The file is made on
first use, but only when no keyring exists yet or the keyring is still in the old plaintext
format: a keyring whose material is encrypted is never given a new master key, since that
would not open it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from kmipd.files import create_file

MASTER_KEY_FILE = "master.key"
MASTER_KEY_ENV = "KMIPD_KEYRING_KEY"
MASTER_KEY_BYTES = 32


class MasterKeyError(Exception):
    """The master key is missing, malformed, exposed, or not the keyring's."""


def check_private(path: Path) -> None:
    """Refuse a file that group or others may access."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise MasterKeyError(
            f"{path} is accessible by group or others (mode {mode:o}); it must be 0600: "
            f"run 'chmod 600 {path}'"
        )


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{where} is not base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise MasterKeyError(f"{where} must hold {MASTER_KEY_BYTES} bytes, not {len(key)}")
    return key


def load(directory: Path, *, may_create: bool) -> bytes:
    """The master key: from the environment, else DIR/keyring/master.key (made if allowed)."""
    from_env = os.environ.get(MASTER_KEY_ENV)
    if from_env:
        return _decode(from_env, f"the environment variable {MASTER_KEY_ENV}")
    path = directory / MASTER_KEY_FILE
    if path.exists():
        check_private(path)
        return _decode(path.read_text(encoding="ascii"), str(path))
    if not may_create:
        raise MasterKeyError(
            f"{path} is missing and {MASTER_KEY_ENV} is not set, but the keyring's material "
            "is encrypted: restore the master key file (or set the variable) to start"
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_bytes(MASTER_KEY_BYTES)
    text = (base64.b64encode(key).decode("ascii") + "\n").encode("ascii")
    if not create_file(path, text, 0o600, exist_ok=True):  # another process made it first
        return load(directory, may_create=False)
    return key


def fingerprint(key: bytes) -> str:
    """A check value stored beside the material: tells a wrong master key from corruption."""
    return hmac.new(key, b"kmipd keyring master key check v1", hashlib.sha256).hexdigest()[:32]
