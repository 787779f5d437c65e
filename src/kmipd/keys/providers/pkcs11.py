"""Root keys in an HSM token, through PKCS#11 (the ``python-pkcs11`` binding).

Each root key version is one token object: an AES-256 secret key, ``CKA_TOKEN``,
``CKA_PRIVATE``, ``CKA_SENSITIVE``, not ``CKA_EXTRACTABLE``, labelled
``<prefix>/<key id>/v<version>`` with ``CKA_ID`` = the 16 bytes of the key id's UUID and the
version (4 bytes, big-endian). The key id is a UUID chosen at ``create``; ``rotate`` adds the
object of the next version and keeps the older ones, so old blobs keep opening.

Wrapping happens inside the token, with one of two mechanisms, recorded in the blob's header:

* ``AES_GCM`` (preferred when the token lists ``CKM_AES_GCM``): ``C_Encrypt`` of the plaintext
  with a random 12-byte IV and ``bound_aad`` as the GCM AAD; body = IV || ciphertext || tag.
* ``AES_KWP`` (RFC 5649, ``CKM_AES_KEY_WRAP_PAD``, or ``CKM_AES_KEY_WRAP_KWP`` where the
  token names it so): ``len(plaintext)`` (2 bytes, big-endian) || SHA-256 of ``bound_aad``
  || plaintext, zero-padded to a multiple of 8 bytes, becomes a session-only generic secret
  object, which ``C_WrapKey`` wraps; unwrap is ``C_UnwrapKey`` into a session-only object
  whose value is read, checked (length, digest, zero padding) and destroyed. Key wrap is a
  deterministic authenticated encryption, so the digest inside binds the AAD. The payload
  is padded here because SoftHSM2 zero-pads a key value to 8 bytes *before* RFC 5649 (its
  output for other lengths is not what RFC 5649 gives); padded, the body is RFC 5649 on
  every token.

``disable`` clears ``CKA_ENCRYPT``, ``CKA_DECRYPT``, ``CKA_WRAP`` and ``CKA_UNWRAP`` on every
version (the token then refuses to use them), ``enable`` sets them again; ``delete`` destroys
every version object (immediate crypto-shred within the token; not restorable), after which
the key is MISSING. Rotations of one key must not run concurrently on two nodes (the caller
serialises them; a duplicate label is detected and the rotation fails).

The user PIN comes from ``Pkcs11Config.pin`` or the environment variable it names; it is
never logged, never put in an error message, and hidden from the config's ``repr``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import struct
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import Mechanism as Ck
from pkcs11 import exceptions as p11e

from kmipd.keys.providers.base import (
    BlobHeader,
    Capabilities,
    Health,
    KeyNotUsable,
    KeyState,
    Mechanism,
    NotSupported,
    ProviderError,
    ProviderKind,
    ProviderUnavailable,
    RootKeyStatus,
    WrappedKeyInvalid,
    bound_aad,
    check_plaintext,
    parse_blob,
)

T = TypeVar("T")

PIN_ENV = "KMIPD_PKCS11_PIN"
_NONCE = 12
_DIGEST = 32
_USAGE = (Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.WRAP, Attribute.UNWRAP)
# Errors after which the session is opened again (once) before giving up.
_SESSION_ERRORS = (
    p11e.SessionClosed,
    p11e.SessionHandleInvalid,
    p11e.UserNotLoggedIn,
    p11e.DeviceRemoved,
    p11e.TokenNotPresent,
)
_LIBRARIES: dict[str, Any] = {}
_LIBRARIES_LOCK = threading.Lock()


def _library(path: str) -> Any:
    """One loaded module per path and process (``C_Initialize`` may run only once)."""
    with _LIBRARIES_LOCK:
        lib = _LIBRARIES.get(path)
        if lib is None:
            lib = _LIBRARIES[path] = pkcs11.lib(path)
        return lib


@dataclass(frozen=True, slots=True)
class Pkcs11Config:
    library: str  # path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so
    token_label: str
    pin: str | None = field(default=None, repr=False)
    pin_env: str = PIN_ENV  # read when ``pin`` is None
    label_prefix: str = "kmipd-root"
    mechanism: Literal["auto", "aes-gcm", "aes-kwp"] = "auto"

    def user_pin(self) -> str:
        pin = self.pin if self.pin is not None else os.environ.get(self.pin_env)
        if not pin:
            raise ProviderUnavailable(
                f"no PKCS#11 user PIN: set it in the configuration or in ${self.pin_env}"
            )
        return pin


def _kwp_payload(plaintext: bytes, bound: bytes) -> bytes:
    payload = struct.pack(">H", len(plaintext)) + hashlib.sha256(bound).digest() + plaintext
    return payload + bytes(-len(payload) % 8)


def _kwp_plaintext(value: bytes, bound: bytes) -> bytes:
    if len(value) < 2 + _DIGEST or len(value) % 8:
        raise WrappedKeyInvalid()
    (size,) = struct.unpack_from(">H", value, 0)
    digest = value[2 : 2 + _DIGEST]
    end = 2 + _DIGEST + size
    digest_ok = hmac.compare_digest(digest, hashlib.sha256(bound).digest())
    if not digest_ok or size == 0 or end > len(value) or any(value[end:]):
        raise WrappedKeyInvalid()
    return value[2 + _DIGEST : end]


class Pkcs11Provider:
    def __init__(self, config: Pkcs11Config) -> None:
        self._config = config
        self._lock = threading.Lock()  # one session, used by one thread at a time
        self._session: Any = None
        self._mechanisms: frozenset[Any] | None = None
        self._capabilities: Capabilities | None = None

    # --- session ---------------------------------------------------------------------------

    def _open(self) -> Any:
        config = self._config
        try:
            lib = _library(config.library)
        except (OSError, RuntimeError) as exc:
            raise ProviderUnavailable(
                f"cannot load the PKCS#11 module {config.library}: {type(exc).__name__}"
            ) from None
        try:
            token = lib.get_token(token_label=config.token_label)
            mechanisms = frozenset(token.slot.get_mechanisms())
            pin = config.user_pin()
            try:
                session = token.open(rw=True, user_pin=pin)
            except p11e.UserAlreadyLoggedIn:
                # Login is per process and token: another session of this process (another
                # provider on the same token) logged in already, which covers this one.
                session = token.open(rw=True)
        except p11e.PinIncorrect:
            raise ProviderUnavailable("the PKCS#11 user PIN was refused") from None
        except p11e.PKCS11Error as exc:
            raise ProviderUnavailable(
                f"cannot open token {config.token_label!r}: {type(exc).__name__}"
            ) from None
        self._mechanisms = mechanisms
        return session

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(p11e.PKCS11Error):
                session.close()

    def _run(self, action: Callable[[Any], T]) -> T:
        """``action(session)`` under the lock, reopening a broken session once."""
        with self._lock:
            for attempt in (1, 2):
                if self._session is None:
                    self._session = self._open()
                try:
                    return action(self._session)
                except _SESSION_ERRORS:
                    self._drop_session()
                    if attempt == 2:
                        raise ProviderUnavailable("the PKCS#11 session was lost") from None
            raise AssertionError("unreachable")

    async def _call(self, action: Callable[[Any], T]) -> T:
        return await asyncio.to_thread(self._run, action)

    # --- mechanisms ------------------------------------------------------------------------

    def _kwp(self) -> Any | None:
        mechanisms = self._mechanisms or frozenset()
        for candidate in (Ck.AES_KEY_WRAP_PAD, Ck.AES_KEY_WRAP_KWP):
            if candidate in mechanisms:
                return candidate
        return None

    def _choose(self) -> Mechanism:
        mechanisms = self._mechanisms or frozenset()
        wanted = self._config.mechanism
        if wanted in ("auto", "aes-gcm") and Ck.AES_GCM in mechanisms:
            return Mechanism.AES_GCM
        if wanted in ("auto", "aes-kwp") and self._kwp() is not None:
            return Mechanism.AES_KWP
        raise NotSupported(f"the token offers no usable wrapping mechanism for {wanted!r}")

    @property
    def capabilities(self) -> Capabilities:
        if self._capabilities is None:
            mechanism = self._run(lambda _: self._choose())
            self._capabilities = Capabilities(
                kind=ProviderKind.PKCS11,
                mechanism=mechanism,
                disable=True,
                restorable_delete=False,
                reports_deleted=False,
                external_changes=True,
            )
        return self._capabilities

    # --- objects ---------------------------------------------------------------------------

    def _label(self, key_id: str, version: int) -> str:
        return f"{self._config.label_prefix}/{key_id}/v{version}"

    @staticmethod
    def _object_id(key_id: str, version: int) -> bytes:
        return uuid.UUID(key_id).bytes + struct.pack(">I", version)

    def _find(self, session: Any, key_id: str, version: int) -> Any | None:
        found = list(
            session.get_objects(
                {
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.LABEL: self._label(key_id, version),
                }
            )
        )
        if len(found) > 1:
            raise ProviderError(f"root key {key_id} version {version} exists twice in the token")
        return found[0] if found else None

    def _versions(self, session: Any, key_id: str) -> list[Any]:
        objects = []
        while (found := self._find(session, key_id, len(objects) + 1)) is not None:
            objects.append(found)
        return objects

    @staticmethod
    def _enabled(obj: Any) -> bool:
        return all(bool(obj[attribute]) for attribute in _USAGE)

    def _usable(
        self, session: Any, key_id: str, version: int | None, action: str
    ) -> tuple[Any, int]:
        """The object of ``version`` (None: the newest) and its version, if the key may
        ``action``."""
        objects = self._versions(session, key_id)
        if not objects:
            raise KeyNotUsable(key_id, KeyState.MISSING, action)
        if not self._enabled(objects[-1]):
            raise KeyNotUsable(key_id, KeyState.DISABLED, action)
        if version is None:
            return objects[-1], len(objects)
        if not 1 <= version <= len(objects):
            raise WrappedKeyInvalid()
        return objects[version - 1], version

    def _generate(self, session: Any, key_id: str, version: int) -> None:
        template: dict[Attribute, Any] = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.MODIFIABLE: True,
            **dict.fromkeys(_USAGE, True),
            Attribute.SIGN: False,
            Attribute.VERIFY: False,
            Attribute.DERIVE: False,
        }
        label = self._label(key_id, version)
        session.generate_key(
            KeyType.AES,
            256,
            id=self._object_id(key_id, version),
            label=label,
            store=True,
            template=template,
        )
        if len(list(session.get_objects({Attribute.LABEL: label}))) > 1:
            raise ProviderError(f"root key {key_id} was rotated concurrently; rotate again")

    # --- the interface ---------------------------------------------------------------------

    async def create(self, name: str) -> str:
        """A new root key. The name is not stored in the token (the label holds the id)."""
        key_id = str(uuid.uuid4())

        def create(session: Any) -> str:
            try:
                self._generate(session, key_id, 1)
            except p11e.PKCS11Error as exc:
                raise ProviderError(
                    f"the token did not create a key: {type(exc).__name__}"
                ) from None
            return key_id

        return await self._call(create)

    async def wrap(self, key_id: str, plaintext: bytes, aad: bytes) -> bytes:
        capabilities = await asyncio.to_thread(lambda: self.capabilities)
        check_plaintext(plaintext, capabilities)
        mechanism = capabilities.mechanism

        def wrap(session: Any) -> bytes:
            root, version = self._usable(session, key_id, None, "wrap")
            header = BlobHeader(ProviderKind.PKCS11, mechanism, key_id, version)
            bound = bound_aad(header, aad)
            try:
                if mechanism == Mechanism.AES_GCM:
                    nonce = secrets.token_bytes(_NONCE)
                    params = pkcs11.GCMParams(nonce, bound, 128)
                    body = nonce + root.encrypt(
                        plaintext, mechanism=Ck.AES_GCM, mechanism_param=params
                    )
                else:
                    body = self._kwp_wrap(session, root, _kwp_payload(plaintext, bound))
            except p11e.PKCS11Error as exc:
                raise ProviderError(f"the token did not wrap: {type(exc).__name__}") from None
            return header.encode() + body

        return await self._call(wrap)

    def _kwp_wrap(self, session: Any, root: Any, payload: bytes) -> bytes:
        temporary = session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                Attribute.TOKEN: False,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
                Attribute.VALUE: payload,
            }
        )
        try:
            return bytes(root.wrap_key(temporary, mechanism=self._kwp()))
        finally:
            temporary.destroy()

    def _kwp_unwrap(self, root: Any, body: bytes) -> bytes:
        temporary = root.unwrap_key(
            ObjectClass.SECRET_KEY,
            KeyType.GENERIC_SECRET,
            body,
            mechanism=self._kwp(),
            template={
                Attribute.TOKEN: False,
                Attribute.SENSITIVE: False,
                Attribute.EXTRACTABLE: True,
            },
        )
        try:
            return bytes(temporary[Attribute.VALUE])
        finally:
            temporary.destroy()

    async def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        header, body = parse_blob(blob)
        if header.kind != ProviderKind.PKCS11:
            raise WrappedKeyInvalid()
        try:
            uuid.UUID(header.key_id)
        except ValueError:
            raise WrappedKeyInvalid() from None
        bound = bound_aad(header, aad)

        def unwrap(session: Any) -> bytes:
            root, _ = self._usable(session, header.key_id, header.version, "unwrap")
            try:
                if header.mechanism == Mechanism.AES_GCM:
                    if len(body) < _NONCE + 16 or Ck.AES_GCM not in (self._mechanisms or ()):
                        raise WrappedKeyInvalid()
                    params = pkcs11.GCMParams(body[:_NONCE], bound, 128)
                    return bytes(
                        root.decrypt(body[_NONCE:], mechanism=Ck.AES_GCM, mechanism_param=params)
                    )
                if self._kwp() is None or len(body) < 16:
                    raise WrappedKeyInvalid()
                value = self._kwp_unwrap(root, body)
            except _SESSION_ERRORS:
                raise
            except p11e.PKCS11Error:
                raise WrappedKeyInvalid() from None
            return _kwp_plaintext(value, bound)

        return await self._call(unwrap)

    async def rotate(self, key_id: str) -> int:
        def rotate(session: Any) -> int:
            version = self._usable(session, key_id, None, "rotate")[1] + 1
            try:
                self._generate(session, key_id, version)
            except p11e.PKCS11Error as exc:
                raise ProviderError(f"the token did not rotate: {type(exc).__name__}") from None
            return version

        return await self._call(rotate)

    async def status(self, key_id: str) -> RootKeyStatus:
        def status(session: Any) -> RootKeyStatus:
            objects = self._versions(session, key_id)
            if not objects:
                return RootKeyStatus(key_id, KeyState.MISSING, 0)
            state = KeyState.ACTIVE if self._enabled(objects[-1]) else KeyState.DISABLED
            return RootKeyStatus(key_id, state, len(objects))

        return await self._call(status)

    async def _set_usage(self, key_id: str, enabled: bool) -> None:
        def change(session: Any) -> None:
            objects = self._versions(session, key_id)
            if not objects:
                raise KeyNotUsable(key_id, KeyState.MISSING, "change state")
            try:
                for obj in objects:
                    for attribute in _USAGE:
                        obj[attribute] = enabled
            except (p11e.AttributeReadOnly, p11e.ArgumentsBad) as exc:
                raise NotSupported(
                    f"the token does not let kmipd change key usage: {type(exc).__name__}"
                ) from None

        await self._call(change)

    async def disable(self, key_id: str) -> None:
        await self._set_usage(key_id, False)

    async def enable(self, key_id: str) -> None:
        await self._set_usage(key_id, True)

    async def delete(self, key_id: str) -> None:
        def delete(session: Any) -> None:
            objects = self._versions(session, key_id)
            if not objects:
                raise KeyNotUsable(key_id, KeyState.MISSING, "be deleted")
            # Newest first, so a failure part-way leaves the key unusable for wrapping.
            for obj in reversed(objects):
                obj.destroy()

        await self._call(delete)

    async def health(self) -> Health:
        def health(session: Any) -> Health:
            session.generate_random(64)  # a round trip to the token
            mechanism = self._choose()
            return Health(
                True, f"token {self._config.token_label!r} answers; wraps with {mechanism.name}"
            )

        try:
            return await self._call(health)
        except (ProviderError, p11e.PKCS11Error) as exc:
            return Health(False, f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                self._drop_session()

        await asyncio.to_thread(close)
