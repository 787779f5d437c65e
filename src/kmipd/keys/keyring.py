"""The built-in keyring: root keys and standard keys, with Key Protect's metadata and rules.

The keyring's state is one JSON document kept by a storage (``keys/keyring_storage.py``):
by default the file ``DIR/keyring/root-keys.json``, mode 0600, replaced atomically on every
change (write a temporary file, fsync, rename, fsync the directory) under an exclusive lock on
``DIR/keyring/.lock``, so several processes (``kmipd serve``, the CLI) share it; each reads
it again when it has changed. A cluster keeps it in PostgreSQL instead
(``Keyring.in_data_dir(DIR, store_url="postgresql://...")``): one row, changed in one
transaction at a time, its revision polled so that a key deleted or disabled on one node is
refused on every other within a second; the master key stays a file (or the environment
variable) on each node, the same everywhere. Key material never leaves this module except a
standard key's payload, and is never stored in plaintext: each version's material is
encrypted with AES-256-GCM under the keyring master key (``keys/master_key.py``), with the key
id and the version id as associated data.

Keys follow Key Protect's life cycle: Active (1), Suspended (2, ``disable``), Deactivated
(3, past its expiration date) and Destroyed (5, ``delete``). **Deletion and crypto-shredding:**
a deleted key is unusable at once (nothing wraps or unwraps under it, and KMIP instances bound
to it stop serving), but its encrypted material is kept for the restore window (30 days by
default), as Key Protect does, so ``restore`` can bring it back. ``purge`` (allowed from 4
hours after the delete) erases the material and the metadata at once; when the restore
window has passed, the material is erased at the next change of the keyring or start, and
the metadata after 90 days. Erased material is gone for good: the data it protected cannot
be recovered, not even with the master key and a copy of the file taken after the erasure.

The older interface (``create``, ``wrap``, ``unwrap``, ``rotate``, ``delete``, ``info``,
``list``) is what the instance wrapping keys use; the Key Protect-compatible API uses the
richer one (``create_key``, ``wrap_dek``, ...).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import secrets
import struct
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kmipd.keys import master_key
from kmipd.keys.keyring_storage import KEYRING_FILE as KEYRING_FILE
from kmipd.keys.keyring_storage import LOCK_FILE as LOCK_FILE
from kmipd.keys.keyring_storage import (
    FileKeyringStorage,
    KeyringStorage,
    PostgresKeyringStorage,
    is_postgres_url,
)

KEYRING_DIR = "keyring"
_HEAD = struct.Struct(">BI")  # format, root key version (1-based), of ``wrap``'s output
_FORMAT = 1
_FILE_FORMAT = 2
# How stale the root key check of a KMIP request may be for a change made by another process
# (a change made in this process is seen at once).
PER_REQUEST_REFRESH = 0.1

PRE_ACTIVE, ACTIVE, SUSPENDED, DEACTIVATED, DESTROYED = 0, 1, 2, 3, 5
STATES = (PRE_ACTIVE, ACTIVE, SUSPENDED, DEACTIVATED, DESTROYED)
DAY = 86400.0
ROOT_KEY_SIZES = (16, 24, 32)
MAX_STANDARD_KEY_BYTES = 7500
MAX_DEK_BYTES = 7500
MAX_ALIASES = 5
MAX_AAD_ITEM = 255
KP_CIPHERTEXT_VERSION = "4.0.0"
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,89}$")
_RESERVED_ALIASES = frozenset(
    [
        "allowed_ip",
        "key",
        "keys",
        "metadata",
        "policy",
        "policies",
        "registration",
        "registrations",
        "ring",
        "rings",
        "rotate",
        "wrap",
        "unwrap",
        "rewrap",
        "version",
        "versions",
    ]
)

T = TypeVar("T")


# --- errors: each carries Key Protect's reason code and HTTP status -------------------------


class KeyringError(Exception):
    """A key is missing, in the wrong state, or a wrapped key does not open under it."""

    code = "KEYRING_ERR"
    status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class KeyNotFound(KeyringError):
    code, status = "KEY_NOT_FOUND_ERR", 404


class KeyDeleted(KeyringError):
    code, status = "KEY_DELETED_ERR", 410


class InvalidKeyState(KeyringError):
    code, status = "KEY_ACTION_INVALID_STATE_ERR", 409


class RootKeyRequired(KeyringError):
    code, status = "KEY_ROOT_REQ_ERR", 400


class InvalidField(KeyringError):
    code, status = "INVALID_FIELD_ERR", 400


class UnprocessableCiphertext(KeyringError):
    code, status = "UNPROCESSABLE_CIPHERTEXT_ERR", 422


class PayloadRequired(KeyringError):
    code, status = "KEY_PAYLOAD_REQ_ERR", 400


class TooEarly(KeyringError):
    code, status = "REQ_TOO_EARLY_ERR", 409


class RotationNotPermitted(KeyringError):
    code, status = "KEY_ROTATION_NOT_PERMITTED", 409


class RestoreExpired(KeyringError):
    code, status = "KEY_RESTORE_EXPIRED", 400


class KeyExpired(KeyringError):
    code, status = "KEY_EXPIRED_ERR", 400


class AliasNotUnique(KeyringError):
    code, status = "KEY_ALIAS_NOT_UNIQUE_ERR", 409


class AliasQuotaExceeded(KeyringError):
    code, status = "KEY_ALIAS_QUOTA_ERR", 400


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRules:
    """Key Protect's time rules, in seconds; settings make them shorter for tests."""

    restore_window: float = 30 * DAY
    purge_delay: float = 4 * 3600.0
    auto_purge_after: float = 90 * DAY
    rotation_interval: float = 3600.0
    action_delay: float = 30.0  # enable and restore, after the last state change


@dataclass(frozen=True, slots=True)
class KeyVersion:
    id: str
    created: float


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key's metadata (never its material)."""

    id: str
    name: str
    description: str
    aliases: tuple[str, ...]
    tags: tuple[str, ...]
    extractable: bool
    state: int
    imported: bool
    created: float
    created_by: str
    last_update: float
    last_rotate: float | None
    expiration: float | None
    deletion_date: float | None
    deleted_by: str | None
    versions: tuple[KeyVersion, ...]
    shredded: bool

    @property
    def deleted(self) -> bool:
        return self.state == DESTROYED

    @property
    def latest(self) -> KeyVersion:
        return self.versions[-1]

    @property
    def is_root(self) -> bool:
        return not self.extractable


@dataclass(frozen=True, slots=True)
class RootKeyInfo:
    id: str
    name: str
    versions: int
    created: int
    deleted: bool
    state: int = ACTIVE


@dataclass(frozen=True, slots=True)
class Wrapped:
    ciphertext: str
    version: str
    plaintext: bytes | None = field(repr=False)  # set when the keyring made the DEK


@dataclass(frozen=True, slots=True)
class Unwrapped:
    plaintext: bytes = field(repr=False)
    version: str
    rewrapped: str | None  # the DEK wrapped under the latest version, if it was older
    latest: str


def _lp(parts: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _material_aad(key_id: str, version_id: str) -> bytes:
    return _lp([b"kmipd-keyring-material-v1", key_id.encode(), version_id.encode()])


def _dek_aad(key_id: str, version_id: str, aad: Sequence[str]) -> bytes:
    return _lp(
        [b"kmipd-kp-wrap-v1", key_id.encode(), version_id.encode(), *(a.encode() for a in aad)]
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def validate_alias(alias: str) -> None:
    if not _ALIAS.match(alias) or _is_uuid(alias) or alias.lower() in _RESERVED_ALIASES:
        raise InvalidField(
            f"alias {alias!r} must be 2 to 90 letters, digits, '-' or '_', start with a letter "
            "or digit, and be neither a UUID nor a reserved word",
            field="aliases",
        )


class Keyring:
    def __init__(
        self,
        path: Path,
        *,
        master: bytes | None = None,
        rules: KeyRules | None = None,
        clock: Callable[[], float] = time.time,
        storage: KeyringStorage | None = None,
    ) -> None:
        """``path`` is the keyring file; its directory holds the master key (unless
        ``master`` is given). ``storage`` keeps the document elsewhere (PostgreSQL)."""
        self._path = path
        self._dir = path.parent
        self._storage: KeyringStorage = storage or FileKeyringStorage(path)
        self._lock = threading.RLock()
        self._refreshed = -PER_REQUEST_REFRESH
        self._rules = rules or KeyRules()
        self._clock = clock
        self._listeners: list[Callable[[str], None]] = []
        self._data: dict[str, Any] = {"format": _FILE_FORMAT, "keys": {}}
        try:
            self._load(master)
        except BaseException:
            self._storage.close()
            raise

    def _load(self, master: bytes | None) -> None:
        with self._lock, self._storage.lock():
            raw = self._storage.read()
            legacy = raw is not None and raw.get("format", 1) == 1
            try:
                self._master = master or master_key.load(
                    self._dir, may_create=raw is None or legacy
                )
            except master_key.MasterKeyError as exc:
                raise KeyringError(str(exc)) from None
            self._check = master_key.fingerprint(self._master)
            if raw is None:
                return
            if legacy:
                current = self._migrate(raw)
            else:
                self._accept(raw)
                current = self._data
            # Erase what outlived its restore window while no process was running.
            data = copy.deepcopy(current)
            self._expire(data, self._clock())
            if not legacy and data == current:
                return
            self._save(data)
        self._data = data  # once the storage has it (the lock's end commits it)

    @classmethod
    def in_data_dir(
        cls,
        data_dir: Path,
        *,
        store_url: str | None = None,
        poll_interval: float = 0.25,
        **options: Any,
    ) -> Keyring:
        """The keyring of ``data_dir``: its document in ``DIR/keyring/root-keys.json``, or in
        PostgreSQL when ``store_url`` is a ``postgresql://`` (or ``postgres://``) URL (any
        other store URL keeps the file). The master key comes from ``DIR/keyring/`` (or the
        environment) either way."""
        path = data_dir / KEYRING_DIR / KEYRING_FILE
        if store_url is not None and is_postgres_url(store_url):
            storage = PostgresKeyringStorage(store_url, poll_interval=poll_interval)
            return cls(path, storage=storage, **options)
        return cls(path, **options)

    @property
    def rules(self) -> KeyRules:
        return self._rules

    @property
    def storage(self) -> KeyringStorage:
        return self._storage

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (HKDF-SHA256 of the master key): the same on every
        node that has the master key, and it reveals nothing of the master key."""
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()
        ).derive(self._master)

    def close(self) -> None:
        """Release the storage's resources (PostgreSQL's connection); nothing for a file."""
        with self._lock:
            self._storage.close()

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(key_id)`` after a key's state changes (disable, delete, ...).

        Changes made by another process or node are not announced: they are seen at the next
        read, which every use of a key does."""
        self._listeners.append(listener)

    # --- storage -------------------------------------------------------------------------

    def _accept(self, raw: dict[str, Any]) -> None:
        where = self._storage.describe()
        if raw.get("format") != _FILE_FORMAT:
            raise KeyringError(f"{where} has an unknown format {raw.get('format')!r}")
        if raw.get("master_key_check") != self._check:
            raise KeyringError(
                f"the keyring master key does not open {where}: use the master key it "
                f"was made with ({self._dir / master_key.MASTER_KEY_FILE} or "
                f"{master_key.MASTER_KEY_ENV})"
            )
        self._data = raw

    def _refresh(self, *, force: bool = False) -> bool:
        """Read the document again if another process or node changed it (call with
        ``_lock`` held); whether it did. ``force``: ask the storage now, not at its next
        poll."""
        if not self._storage.changed(force=force):
            return False
        raw = self._storage.read()
        if raw is None:
            return False
        self._accept(raw)
        return True

    def _save(self, data: dict[str, Any]) -> None:
        """Hand ``data`` to the storage (inside its lock); the caller adopts it once the lock
        has ended without error."""
        data["format"] = _FILE_FORMAT
        data["master_key_check"] = self._check
        self._storage.write(data)

    def _migrate(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Format 1 (plaintext material) to format 2 (material encrypted)."""
        keys: dict[str, Any] = {}
        for key_id, old in raw.get("keys", {}).items():
            created = float(old.get("created", 0))
            versions = []
            for index, material in enumerate(old.get("versions", [])):
                version_id = key_id if index == 0 else str(uuid.uuid4())
                versions.append(
                    {
                        "id": version_id,
                        "created": created,
                        "material": self._seal(key_id, version_id, base64.b64decode(material)),
                    }
                )
            deleted = old.get("deleted")
            if not versions:  # deleted by the old code: its material is already gone
                versions.append({"id": key_id, "created": created, "material": None})
            keys[key_id] = self._new_entry(
                old.get("name", key_id), False, False, created, "kmipd", versions
            )
            if deleted is not None:
                keys[key_id].update(state=DESTROYED, deletionDate=float(deleted), deletedBy="kmipd")
                if all(v["material"] is None for v in versions):
                    keys[key_id]["shredded"] = float(deleted)
        return {"format": _FILE_FORMAT, "keys": keys}

    @staticmethod
    def _new_entry(
        name: str,
        extractable: bool,
        imported: bool,
        now: float,
        created_by: str,
        versions: list[dict[str, Any]],
        *,
        description: str = "",
        aliases: Sequence[str] = (),
        tags: Sequence[str] = (),
        expiration: float | None = None,
    ) -> dict[str, Any]:
        return {
            "name": name,
            "description": description,
            "aliases": list(aliases),
            "tags": list(tags),
            "extractable": extractable,
            "state": ACTIVE,
            "imported": imported,
            "created": now,
            "createdBy": created_by,
            "lastUpdate": now,
            "lastRotate": None,
            "expiration": expiration,
            "stateChanged": now,
            "deletionDate": None,
            "deletedBy": None,
            "shredded": None,
            "versions": versions,
        }

    def _seal(self, key_id: str, version_id: str, material: bytes) -> str:
        nonce = secrets.token_bytes(12)
        body = AESGCM(self._master).encrypt(nonce, material, _material_aad(key_id, version_id))
        return _b64(nonce + body)

    def _open(self, key_id: str, version: dict[str, Any]) -> bytes:
        sealed = version.get("material")
        if sealed is None:
            raise KeyDeleted(f"the material of key {key_id} was destroyed")
        blob = base64.b64decode(sealed)
        try:
            return AESGCM(self._master).decrypt(
                blob[:12], blob[12:], _material_aad(key_id, version["id"])
            )
        except InvalidTag:
            raise KeyringError(f"the material of key {key_id} does not open") from None

    # --- transactions ----------------------------------------------------------------------

    def _read(self, action: Callable[[dict[str, Any]], T], *, per_request: bool = False) -> T:
        """``action`` on the current document. ``per_request``: a check that every KMIP
        request makes may use a view refreshed within the last PER_REQUEST_REFRESH seconds
        (asking the storage is a system call or a query each time, on the event loop)."""
        with self._lock:
            now = time.monotonic()
            if not per_request or now - self._refreshed >= PER_REQUEST_REFRESH:
                self._refresh()
                self._refreshed = now
            try:
                return action(self._data)
            except (KeyNotFound, UnprocessableCiphertext):
                # A key or version perhaps made by another node since the last poll (a
                # PostgreSQL storage looks every poll interval): look now (cheap), once.
                if not self._refresh(force=True):
                    raise
                return action(self._data)

    def _mutate(self, action: Callable[[dict[str, Any], float], T], notify: str | None = None) -> T:
        with self._lock:
            with self._storage.lock():
                self._refresh()
                data = copy.deepcopy(self._data)
                now = self._clock()
                result = action(data, now)
                self._expire(data, now)
                self._save(data)
            self._data = data  # once the storage has it (the lock's end commits it)
        if notify is not None:
            for listener in list(self._listeners):
                listener(notify)
        return result

    def _expire(self, data: dict[str, Any], now: float) -> None:
        """Erase the material of keys deleted longer ago than the restore window."""
        rules = self._rules
        for key_id, entry in list(data["keys"].items()):
            deleted = entry.get("deletionDate")
            if "purged" in entry or deleted is None or entry["state"] != DESTROYED:
                continue
            if now - deleted >= rules.auto_purge_after:
                data["keys"][key_id] = {"purged": now}
            elif now - deleted >= rules.restore_window and entry.get("shredded") is None:
                for version in entry["versions"]:
                    version["material"] = None
                entry["shredded"] = now

    def _find(self, data: dict[str, Any], ref: str) -> tuple[str, dict[str, Any]]:
        keys = data["keys"]
        entry = keys.get(ref)
        if entry is not None and "purged" not in entry:
            return ref, entry
        for key_id, candidate in keys.items():
            if "purged" not in candidate and ref in candidate["aliases"]:
                return key_id, candidate
        raise KeyNotFound(f"key {ref} does not exist")

    def _state(self, entry: dict[str, Any], now: float) -> int:
        state: int = entry["state"]
        expiration = entry.get("expiration")
        if state in (ACTIVE, SUSPENDED) and expiration is not None and now >= expiration:
            return DEACTIVATED
        return state

    def _record(self, key_id: str, entry: dict[str, Any], now: float) -> KeyRecord:
        return KeyRecord(
            id=key_id,
            name=entry["name"],
            description=entry["description"],
            aliases=tuple(entry["aliases"]),
            tags=tuple(entry["tags"]),
            extractable=entry["extractable"],
            state=self._state(entry, now),
            imported=entry["imported"],
            created=entry["created"],
            created_by=entry["createdBy"],
            last_update=entry["lastUpdate"],
            last_rotate=entry["lastRotate"],
            expiration=entry["expiration"],
            deletion_date=entry["deletionDate"],
            deleted_by=entry["deletedBy"],
            versions=tuple(KeyVersion(v["id"], v["created"]) for v in entry["versions"]),
            shredded=entry.get("shredded") is not None,
        )

    def _usable(
        self, key_id: str, entry: dict[str, Any], now: float, states: tuple[int, ...]
    ) -> None:
        if entry["extractable"]:
            raise RootKeyRequired("the action can only be completed with a root key")
        if self._state(entry, now) not in states:
            raise InvalidKeyState(f"key {key_id} is not in a valid state for this action")

    # --- Key Protect interface -------------------------------------------------------------

    def create_key(
        self,
        name: str,
        *,
        extractable: bool = False,
        payload: bytes | None = None,
        description: str = "",
        aliases: Sequence[str] = (),
        tags: Sequence[str] = (),
        expiration: float | None = None,
        created_by: str = "kmipd",
    ) -> KeyRecord:
        if payload is not None:
            _check_material(payload, extractable)
        if len(aliases) > MAX_ALIASES:
            raise AliasQuotaExceeded(f"a key has at most {MAX_ALIASES} aliases")
        for alias in aliases:
            validate_alias(alias)
        if len(set(aliases)) != len(aliases):
            raise InvalidField("the aliases repeat", field="aliases")
        key_id = str(uuid.uuid4())
        material = payload if payload is not None else secrets.token_bytes(32)

        def create(data: dict[str, Any], now: float) -> KeyRecord:
            if expiration is not None and expiration <= now:
                raise InvalidField("the expiration date is in the past", field="expirationDate")
            self._check_aliases_free(data, aliases)
            version = {
                "id": key_id,
                "created": now,
                "material": self._seal(key_id, key_id, material),
            }
            entry = self._new_entry(
                name,
                extractable,
                payload is not None,
                now,
                created_by,
                [version],
                description=description,
                aliases=aliases,
                tags=tags,
                expiration=expiration,
            )
            data["keys"][key_id] = entry
            return self._record(key_id, entry, now)

        return self._mutate(create)

    @staticmethod
    def _check_aliases_free(data: dict[str, Any], aliases: Sequence[str]) -> None:
        for other_id, other in data["keys"].items():
            if "purged" in other:
                continue
            for alias in aliases:
                if alias in other["aliases"] or alias == other_id:
                    raise AliasNotUnique(f"the alias {alias!r} is already in use")

    def get(self, ref: str) -> KeyRecord:
        def get(data: dict[str, Any]) -> KeyRecord:
            key_id, entry = self._find(data, ref)
            return self._record(key_id, entry, self._clock())

        return self._read(get)

    def payload(self, ref: str) -> bytes | None:
        """A standard key's material while it is Active; None for root keys and otherwise."""

        def payload(data: dict[str, Any]) -> bytes | None:
            key_id, entry = self._find(data, ref)
            if not entry["extractable"] or self._state(entry, self._clock()) != ACTIVE:
                return None
            return self._open(key_id, entry["versions"][-1])

        return self._read(payload)

    def all_keys(self) -> list[KeyRecord]:
        def records(data: dict[str, Any]) -> list[KeyRecord]:
            now = self._clock()
            return [
                self._record(key_id, entry, now)
                for key_id, entry in data["keys"].items()
                if "purged" not in entry
            ]

        return self._read(records)

    def rotate_key(self, ref: str, payload: bytes | None = None) -> KeyRecord:
        def rotate(data: dict[str, Any], now: float) -> KeyRecord:
            key_id, entry = self._find(data, ref)
            self._usable(key_id, entry, now, (ACTIVE, DEACTIVATED))
            if entry["imported"] and payload is None:
                raise PayloadRequired(
                    "this root key was created with key material you supplied: give new "
                    "material (payload) to rotate it"
                )
            if not entry["imported"] and payload is not None:
                raise InvalidField(
                    "this root key was generated by the service: rotate it without a payload",
                    field="payload",
                )
            if payload is not None:
                _check_material(payload, False)
            last = entry["lastRotate"]
            if last is not None and now - last < self._rules.rotation_interval:
                raise RotationNotPermitted(
                    "this root key was rotated recently; one rotation per "
                    f"{self._rules.rotation_interval:g} seconds is permitted"
                )
            self._add_version(key_id, entry, now, payload)
            return self._record(key_id, entry, now)

        return self._mutate(rotate)

    def _add_version(
        self, key_id: str, entry: dict[str, Any], now: float, payload: bytes | None
    ) -> None:
        version_id = str(uuid.uuid4())
        material = payload if payload is not None else secrets.token_bytes(32)
        entry["versions"].append(
            {"id": version_id, "created": now, "material": self._seal(key_id, version_id, material)}
        )
        entry["lastRotate"] = entry["lastUpdate"] = now

    def disable(self, ref: str) -> KeyRecord:
        return self._transition(ref, (ACTIVE,), SUSPENDED)

    def enable(self, ref: str) -> KeyRecord:
        return self._transition(ref, (SUSPENDED,), ACTIVE, wait=True)

    def _transition(
        self, ref: str, allowed: tuple[int, ...], target: int, *, wait: bool = False
    ) -> KeyRecord:
        key_id = self.get(ref).id

        def change(data: dict[str, Any], now: float) -> KeyRecord:
            _, entry = self._find(data, key_id)
            self._usable(key_id, entry, now, allowed)
            if wait and now - entry["stateChanged"] < self._rules.action_delay:
                raise TooEarly("the key was updated recently; wait and try again")
            entry["state"] = target
            entry["stateChanged"] = entry["lastUpdate"] = now
            return self._record(key_id, entry, now)

        return self._mutate(change, notify=key_id)

    def delete_key(self, ref: str, deleted_by: str = "kmipd") -> KeyRecord:
        key_id = self.get(ref).id

        def delete(data: dict[str, Any], now: float) -> KeyRecord:
            _, entry = self._find(data, key_id)
            if entry["state"] == DESTROYED:
                raise KeyDeleted(f"key {key_id} has already been deleted")
            entry.update(
                state=DESTROYED,
                deletionDate=now,
                deletedBy=deleted_by,
                stateChanged=now,
                lastUpdate=now,
            )
            return self._record(key_id, entry, now)

        return self._mutate(delete, notify=key_id)

    def restore(self, ref: str) -> KeyRecord:
        key_id = self.get(ref).id

        def restore(data: dict[str, Any], now: float) -> KeyRecord:
            _, entry = self._find(data, key_id)
            if entry["extractable"]:
                raise RootKeyRequired("only root keys can be restored")
            if entry["state"] != DESTROYED:
                raise InvalidKeyState(f"key {key_id} is not deleted")
            since = now - entry["deletionDate"]
            if entry.get("shredded") is not None or since > self._rules.restore_window:
                raise RestoreExpired("the key's restore window has passed")
            if entry["expiration"] is not None and now >= entry["expiration"]:
                raise KeyExpired("the key has expired and cannot be restored")
            if since < self._rules.action_delay:
                raise TooEarly("the key was deleted moments ago; wait and try again")
            entry.update(
                state=ACTIVE, deletionDate=None, deletedBy=None, stateChanged=now, lastUpdate=now
            )
            return self._record(key_id, entry, now)

        return self._mutate(restore, notify=key_id)

    def purge(self, ref: str) -> KeyRecord:
        """Erase a deleted key's material and metadata now; it is then not found."""
        key_id = self.get(ref).id

        def purge(data: dict[str, Any], now: float) -> KeyRecord:
            _, entry = self._find(data, key_id)
            if entry["state"] != DESTROYED:
                raise InvalidKeyState(f"key {key_id} must be deleted before it is purged")
            if now - entry["deletionDate"] < self._rules.purge_delay:
                raise TooEarly(
                    f"a key can be purged {self._rules.purge_delay:g} seconds after its deletion"
                )
            record = self._record(key_id, entry, now)
            data["keys"][key_id] = {"purged": now}
            return record

        return self._mutate(purge, notify=key_id)

    def add_alias(self, ref: str, alias: str) -> KeyRecord:
        validate_alias(alias)
        key_id = self.get(ref).id

        def add(data: dict[str, Any], now: float) -> KeyRecord:
            _, entry = self._find(data, key_id)
            if alias not in entry["aliases"]:
                if len(entry["aliases"]) >= MAX_ALIASES:
                    raise AliasQuotaExceeded(f"a key has at most {MAX_ALIASES} aliases")
                self._check_aliases_free(data, [alias])
                entry["aliases"].append(alias)
                entry["lastUpdate"] = now
            return self._record(key_id, entry, now)

        return self._mutate(add)

    def remove_alias(self, ref: str, alias: str) -> KeyRecord:
        key_id = self.get(ref).id

        def remove(data: dict[str, Any], now: float) -> KeyRecord:
            _, entry = self._find(data, key_id)
            if alias not in entry["aliases"]:
                raise KeyNotFound(f"key {key_id} has no alias {alias!r}")
            entry["aliases"].remove(alias)
            entry["lastUpdate"] = now
            return self._record(key_id, entry, now)

        return self._mutate(remove)

    # Wrapping of data encryption keys (Key Protect's wrap/unwrap/rewrap). The ciphertext is
    # base64 of {"ciphertext", "iv", "version", "handle"}, where handle is the key version.

    def _material_for(
        self, ref: str, states: tuple[int, ...], handle: str | None = None
    ) -> tuple[str, str, bytes, str, bytes]:
        """(key id, version id, material, latest version id, latest material)."""

        def material(data: dict[str, Any]) -> tuple[str, str, bytes, str, bytes]:
            key_id, entry = self._find(data, ref)
            self._usable(key_id, entry, self._clock(), states)
            versions = entry["versions"]
            latest = versions[-1]
            chosen = (
                latest if handle is None else next((v for v in versions if v["id"] == handle), None)
            )
            if chosen is None:
                raise UnprocessableCiphertext("the ciphertext was not made by this key")
            return (
                key_id,
                chosen["id"],
                self._open(key_id, chosen),
                latest["id"],
                self._open(key_id, latest),
            )

        return self._read(material)

    def wrap_dek(self, ref: str, plaintext: bytes | None, aad: Sequence[str] = ()) -> Wrapped:
        _check_aad(aad)
        if plaintext is not None and not 1 <= len(plaintext) <= MAX_DEK_BYTES:
            raise InvalidField(f"plaintext must hold 1 to {MAX_DEK_BYTES} bytes", field="plaintext")
        key_id, _, _, version_id, material = self._material_for(ref, (ACTIVE,))
        generated = plaintext is None
        dek = secrets.token_bytes(32) if plaintext is None else plaintext
        ciphertext = _seal_dek(key_id, version_id, material, dek, aad)
        return Wrapped(ciphertext, version_id, dek if generated else None)

    def unwrap_dek(self, ref: str, ciphertext: str, aad: Sequence[str] = ()) -> Unwrapped:
        _check_aad(aad)
        handle, nonce, body = _parse_kp_ciphertext(ciphertext)
        key_id, version_id, material, latest_id, latest = self._material_for(
            ref, (ACTIVE, DEACTIVATED), handle
        )
        try:
            dek = AESGCM(material).decrypt(nonce, body, _dek_aad(key_id, version_id, aad))
        except InvalidTag:
            raise UnprocessableCiphertext(
                "the ciphertext is invalid or corrupted, or the aad differs"
            ) from None
        rewrapped = None
        if version_id != latest_id:
            rewrapped = _seal_dek(key_id, latest_id, latest, dek, aad)
        return Unwrapped(dek, version_id, rewrapped, latest_id)

    def rewrap_dek(self, ref: str, ciphertext: str, aad: Sequence[str] = ()) -> Unwrapped:
        """The DEK wrapped under the latest version (``rewrapped``); the DEK is not returned
        to callers of the API (``plaintext`` is for this module's caller only)."""
        result = self.unwrap_dek(ref, ciphertext, aad)
        if result.rewrapped is not None:
            return result
        key_id, _, _, latest_id, latest = self._material_for(ref, (ACTIVE, DEACTIVATED))
        rewrapped = _seal_dek(key_id, latest_id, latest, result.plaintext, aad)
        return Unwrapped(result.plaintext, result.version, rewrapped, latest_id)

    # --- the older interface: instance wrapping keys ---------------------------------------

    def create(self, name: str) -> str:
        return self.create_key(name).id

    def rotate(self, key_id: str) -> int:
        """A new version of a root key (no time rule); the number of versions."""

        def rotate(data: dict[str, Any], now: float) -> int:
            _, entry = self._find(data, key_id)
            self._usable(key_id, entry, now, (ACTIVE, DEACTIVATED))
            if entry["imported"]:
                raise PayloadRequired("an imported root key needs new material to rotate")
            self._add_version(key_id, entry, now, None)
            return len(entry["versions"])

        return self._mutate(rotate)

    def delete(self, key_id: str) -> None:
        """Delete (Destroyed at once; material erased after the restore window or a purge)."""
        self.delete_key(key_id)

    def info(self, key_id: str) -> RootKeyInfo:
        record = self.get(key_id)
        return RootKeyInfo(
            record.id,
            record.name,
            len(record.versions),
            int(record.created),
            record.deleted,
            record.state,
        )

    def list(self) -> list[RootKeyInfo]:
        return [
            RootKeyInfo(r.id, r.name, len(r.versions), int(r.created), r.deleted, r.state)
            for r in sorted(self.all_keys(), key=lambda r: r.id)
        ]

    def check(self, key_id: str, *, for_wrap: bool) -> None:
        """Raise unless the root key may wrap (Active) or unwrap (Active or Deactivated)."""

        def check(data: dict[str, Any]) -> None:
            _, entry = self._find(data, key_id)
            states = (ACTIVE,) if for_wrap else (ACTIVE, DEACTIVATED)
            self._usable(key_id, entry, self._clock(), states)

        self._read(check, per_request=True)

    def wrap(self, key_id: str, plaintext: bytes, aad: bytes) -> bytes:
        def material(data: dict[str, Any]) -> tuple[int, bytes]:
            _, entry = self._find(data, key_id)
            self._usable(key_id, entry, self._clock(), (ACTIVE,))
            versions = entry["versions"]
            return len(versions), self._open(key_id, versions[-1])

        version, key = self._read(material)
        nonce = secrets.token_bytes(12)
        return _HEAD.pack(_FORMAT, version) + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        if len(wrapped) < _HEAD.size + 12 + 16:
            raise UnprocessableCiphertext("wrapped key is malformed")
        fmt, version = _HEAD.unpack_from(wrapped, 0)

        def material(data: dict[str, Any]) -> bytes:
            _, entry = self._find(data, key_id)
            self._usable(key_id, entry, self._clock(), (ACTIVE, DEACTIVATED))
            versions = entry["versions"]
            if fmt != _FORMAT or not 1 <= version <= len(versions):
                raise UnprocessableCiphertext("wrapped key is malformed")
            return self._open(key_id, versions[version - 1])

        key = self._read(material)
        nonce = wrapped[_HEAD.size : _HEAD.size + 12]
        try:
            return AESGCM(key).decrypt(nonce, wrapped[_HEAD.size + 12 :], aad)
        except InvalidTag:
            raise UnprocessableCiphertext("wrapped key does not open under this root key") from None


def _check_material(payload: bytes, extractable: bool) -> None:
    if extractable:
        if not 1 <= len(payload) <= MAX_STANDARD_KEY_BYTES:
            raise InvalidField(
                f"a standard key's payload holds 1 to {MAX_STANDARD_KEY_BYTES} bytes",
                field="payload",
            )
    elif len(payload) not in ROOT_KEY_SIZES:
        raise InvalidField(
            "a root key's payload must be base64 of 16, 24 or 32 bytes", field="payload"
        )


def _check_aad(aad: Sequence[str]) -> None:
    for item in aad:
        if len(item) > MAX_AAD_ITEM:
            raise InvalidField(
                f"each aad string holds at most {MAX_AAD_ITEM} characters", field="aad"
            )


def _seal_dek(key_id: str, version_id: str, material: bytes, dek: bytes, aad: Sequence[str]) -> str:
    nonce = secrets.token_bytes(12)
    body = AESGCM(material).encrypt(nonce, dek, _dek_aad(key_id, version_id, aad))
    envelope = {
        "ciphertext": _b64(body),
        "iv": _b64(nonce),
        "version": KP_CIPHERTEXT_VERSION,
        "handle": version_id,
    }
    return _b64(json.dumps(envelope, separators=(",", ":")).encode())


def decode_b64(text: str, field: str) -> bytes:
    """Strict base64 (standard alphabet, padding), else INVALID_FIELD_ERR on ``field``."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidField(f"{field} must be base64", field=field) from None


def _parse_kp_ciphertext(ciphertext: str) -> tuple[str, bytes, bytes]:
    raw = decode_b64(ciphertext, "ciphertext")
    try:
        envelope = json.loads(raw)
        handle = envelope["handle"]
        nonce = base64.b64decode(envelope["iv"], validate=True)
        body = base64.b64decode(envelope["ciphertext"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise UnprocessableCiphertext("the ciphertext is invalid or corrupted") from None
    if not isinstance(handle, str) or len(nonce) != 12 or len(body) < 16:
        raise UnprocessableCiphertext("the ciphertext is invalid or corrupted")
    return handle, nonce, body
