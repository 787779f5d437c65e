"""The built-in keyring: root keys (AES-256, versioned) in one file of the data directory.

The file is ``DIR/keyring/root-keys.json``, mode 0600, replaced atomically on every change
(write a temporary file, fsync, rename, fsync the directory). Root key material never leaves
this module: callers wrap and unwrap through it. Deleting a root key removes its material
from the file, which crypto-shreds everything wrapped under it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEYRING_DIR = "keyring"
KEYRING_FILE = "root-keys.json"
_HEAD = struct.Struct(">BI")  # format, root key version
_FORMAT = 1


class KeyringError(Exception):
    """A root key is missing, deleted, or a wrapped key does not open under it."""


@dataclass(frozen=True, slots=True)
class RootKeyInfo:
    id: str
    name: str
    versions: int
    created: int
    deleted: bool


class Keyring:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._data = self._load()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Keyring:
        return cls(data_dir / KEYRING_DIR / KEYRING_FILE)

    def _load(self) -> dict:
        try:
            mode = self._path.stat().st_mode & 0o777
        except FileNotFoundError:
            return {"format": 1, "keys": {}}
        if mode & 0o077:
            raise KeyringError(
                f"{self._path} is readable by others (mode {mode:o}); it must be 0600"
            )
        return json.loads(self._path.read_text(encoding="utf-8"))

    def _save(self) -> None:
        directory = self._path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = directory / f".{KEYRING_FILE}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self._data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self._path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def create(self, name: str) -> str:
        key_id = str(uuid.uuid4())
        with self._lock:
            self._data["keys"][key_id] = {
                "name": name,
                "created": int(time.time()),
                "versions": [_encode(secrets.token_bytes(32))],
            }
            self._save()
        return key_id

    def rotate(self, key_id: str) -> int:
        with self._lock:
            entry = self._entry(key_id)
            entry["versions"].append(_encode(secrets.token_bytes(32)))
            self._save()
            return len(entry["versions"])

    def delete(self, key_id: str) -> None:
        with self._lock:
            entry = self._entry(key_id)
            entry["versions"] = []
            entry["deleted"] = int(time.time())
            self._save()

    def info(self, key_id: str) -> RootKeyInfo:
        with self._lock:
            entry = self._data["keys"].get(key_id)
            if entry is None:
                raise KeyringError(f"root key {key_id} does not exist")
            return RootKeyInfo(
                key_id, entry["name"], len(entry["versions"]), entry["created"], "deleted" in entry
            )

    def list(self) -> list[RootKeyInfo]:
        return [self.info(key_id) for key_id in sorted(self._data["keys"])]

    def _entry(self, key_id: str) -> dict:
        entry = self._data["keys"].get(key_id)
        if entry is None:
            # Created by another process since we read the file (``kmipd`` CLI, another
            # node's admin action): read it again. Deletions are never undone by a reload,
            # because a deleted key keeps its entry (with no versions) in the file.
            self._data = self._load()
            entry = self._data["keys"].get(key_id)
        if entry is None or "deleted" in entry:
            raise KeyringError(f"root key {key_id} does not exist or was deleted")
        return entry

    def wrap(self, key_id: str, plaintext: bytes, aad: bytes) -> bytes:
        with self._lock:
            versions = self._entry(key_id)["versions"]
            version = len(versions)
            material = _decode(versions[-1])
        nonce = secrets.token_bytes(12)
        return (
            _HEAD.pack(_FORMAT, version) + nonce + AESGCM(material).encrypt(nonce, plaintext, aad)
        )

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        if len(wrapped) < _HEAD.size + 12 + 16:
            raise KeyringError("wrapped key is malformed")
        fmt, version = _HEAD.unpack_from(wrapped, 0)
        with self._lock:
            versions = self._entry(key_id)["versions"]
            if fmt != _FORMAT or not 1 <= version <= len(versions):
                raise KeyringError("wrapped key is malformed")
            material = _decode(versions[version - 1])
        nonce = wrapped[_HEAD.size : _HEAD.size + 12]
        try:
            return AESGCM(material).decrypt(nonce, wrapped[_HEAD.size + 12 :], aad)
        except InvalidTag:
            raise KeyringError("wrapped key does not open under this root key") from None


def _encode(material: bytes) -> str:
    return base64.b64encode(material).decode("ascii")


def _decode(text: str) -> bytes:
    return base64.b64decode(text)
