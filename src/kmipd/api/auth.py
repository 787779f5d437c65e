"""API keys, roles and bearer tokens.

An API key belongs to a named service ID and has one role. Only its SHA-256 is stored: the
key is 256 random bits, so a plain hash cannot be brute-forced and lets kmipd find the key by
its hash. The IAM-compatible token endpoint trades an API key for a short-lived JWT (HS256,
signed with a key kept in the data directory, so every node of a cluster accepts it).
Every request checks that the key behind a token is still valid, so revoking a key also
refuses the tokens it obtained.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import jwt

from kmipd.files import create_file
from kmipd.store.records import ApiKeyRecord
from kmipd.store.store import Store

TOKEN_LIFETIME = 3600
TOKEN_ISSUER = "kmipd"
SIGNING_KEY_FILE = "api-token-key"
SIGNING_KEY_BYTES = 32
API_KEY_PREFIX = "kmipd-"


class Role(IntEnum):
    """Each role can do everything the roles below it can."""

    READER = 1  # read, wrap, unwrap
    WRITER = 2  # + create, rotate, upload certificates
    MANAGER = 3  # + delete, disable, restore, manage API keys

    @property
    def label(self) -> str:
        return self.name.title()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {text!r}; use Reader, Writer or Manager") from None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a service ID, through one of its API keys."""

    service_id: str
    role: Role
    key_id: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


class SigningKeyError(Exception):
    """The token signing key file is readable by others, or damaged."""


def load_signing_key(data_dir: Path) -> bytes:
    """The token signing key in DIR/api-token-key, made (mode 0600) on first use.

    The file appears whole or not at all (written and fsynced under a temporary name, then
    linked into place, which never replaces another process's key), so no process reads an
    empty or partial key. A file others may read, or one too short to be a key, is refused.
    """
    path = data_dir / SIGNING_KEY_FILE
    if not path.exists():
        _make_signing_key(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SigningKeyError(
            f"{path} is accessible by group or others (mode {mode:o}); it must be 0600: "
            f"run 'chmod 600 {path}'"
        )
    key = path.read_bytes()
    if len(key) < SIGNING_KEY_BYTES:
        raise SigningKeyError(
            f"{path} holds {len(key)} bytes, not a signing key of {SIGNING_KEY_BYTES}: it was "
            "damaged (e.g. a crash while it was made); delete it to make a new one (tokens "
            "issued so far will be refused)"
        )
    return key


def _make_signing_key(path: Path) -> None:
    create_file(path, secrets.token_bytes(SIGNING_KEY_BYTES), 0o600, exist_ok=True)


class ApiAuth:
    def __init__(
        self,
        store: Store,
        signing_key: bytes,
        token_lifetime: int = TOKEN_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._signing_key = signing_key
        self._token_lifetime = token_lifetime
        self._clock = clock

    @property
    def store(self) -> Store:
        return self._store

    async def revoke(self, key_id: str) -> bool:
        return await self._store.revoke_api_key(key_id, int(self._clock()))

    async def create_key(
        self, service_id: str, role: Role, description: str = ""
    ) -> tuple[ApiKeyRecord, str]:
        """A new API key; the secret is returned once and never stored."""
        secret = new_secret()
        record = ApiKeyRecord(
            id=str(uuid.uuid4()),
            service_id=service_id,
            role=role.label,
            secret_hash=hash_secret(secret),
            created=int(self._clock()),
            description=description,
        )
        await self._store.add_api_key(record)
        return record, secret

    async def from_api_key(self, secret: str) -> Principal | None:
        record = await self._store.api_key(secret_hash=hash_secret(secret))
        return _principal(record)

    def issue_token(self, principal: Principal) -> tuple[str, int, int]:
        """A bearer token for ``principal``: (token, issued at, expires at)."""
        now = int(self._clock())
        expires = now + self._token_lifetime
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": principal.service_id,
            "kid": principal.key_id,
            "role": principal.role.label,
            "iat": now,
            "exp": expires,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._signing_key, algorithm="HS256"), now, expires

    async def from_bearer(self, credential: str) -> Principal | None:
        """A token issued here, or (for convenience) an API key itself."""
        if credential.startswith(API_KEY_PREFIX):
            return await self.from_api_key(credential)
        try:
            claims = jwt.decode(
                credential,
                self._signing_key,
                algorithms=["HS256"],
                issuer=TOKEN_ISSUER,
                options={"require": ["exp", "iat", "kid"]},
                leeway=0,
            )
        except jwt.PyJWTError:
            return None
        if claims["exp"] <= self._clock():
            return None
        record = await self._store.api_key(key_id=str(claims["kid"]))
        return _principal(record)


def _principal(record: ApiKeyRecord | None) -> Principal | None:
    if record is None or record.revoked is not None:
        return None
    return Principal(record.service_id, Role.parse(record.role), record.id)
