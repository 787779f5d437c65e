"""Root keys in a remote Key Protect-compatible service (IBM Key Protect, or another kmipd).

An IAM API key is exchanged for a bearer token at ``<iam_url>/identity/token`` (cached until
shortly before it expires); every call names the service instance in ``Bluemix-Instance``.
Wrap and unwrap are ``POST /api/v2/keys/{id}/actions/wrap|unwrap``. Key Protect binds a list
of strings as AAD, so kmipd's bound AAD bytes (see ``base.bound_aad``) travel as one base64
string. A blob is the common header, a 32-byte check value, and Key Protect's opaque
ciphertext (the bytes of its base64 text). Key Protect authenticates only part of its
ciphertext (its JSON carries fields it ignores), so kmipd wraps ``plaintext || check_key``
(a fresh random 32-byte key) and keeps HMAC-SHA256(check_key, header || ciphertext): any
change to the blob fails after unwrap, without the check value revealing anything.
Key Protect names versions by id; the header's 1-based number is the version's place in
``GET /keys/{id}/versions`` (oldest first), and unwrap checks that the version Key Protect
reports for a ciphertext is the one the header names.

States: 1 Active, 2 Suspended (DISABLED), 3 Deactivated, 5 Destroyed (DELETED); 404 MISSING.
Errors never carry the API key, a token, a plaintext or an AAD.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from kmipd.keys.providers.base import (
    BlobHeader,
    Capabilities,
    Health,
    KeyNotUsable,
    KeyState,
    Mechanism,
    ProviderError,
    ProviderKind,
    ProviderUnavailable,
    RootKeyStatus,
    WrappedKeyInvalid,
    bound_aad,
    check_plaintext,
    parse_blob,
)

API_KEY_ENV = "KMIPD_KEYPROTECT_API_KEY"
KEY_TYPE = "application/vnd.ibm.kms.key+json"
ACTION_TYPE = "application/vnd.ibm.kms.key_action+json"
GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey"
TOKEN_MARGIN = 60.0  # seconds before expiry a token is replaced
CHECK_SIZE = 32  # the check key appended to the plaintext, and the HMAC-SHA256 in the blob
# Key Protect's key ids are UUIDs; a header naming anything else is a damaged blob.
_KEY_ID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")

_STATES = {
    0: KeyState.DISABLED,  # pre-active
    1: KeyState.ACTIVE,
    2: KeyState.DISABLED,
    3: KeyState.DEACTIVATED,
    5: KeyState.DELETED,
}

CAPABILITIES = Capabilities(
    kind=ProviderKind.KEYPROTECT,
    mechanism=Mechanism.AES_GCM,
    disable=True,
    restorable_delete=True,
    reports_deleted=True,
    external_changes=True,
)


@dataclass(frozen=True, slots=True)
class KeyProtectConfig:
    url: str  # the service endpoint, e.g. https://us-south.kms.cloud.ibm.com
    instance_id: str  # the Bluemix-Instance GUID
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str = API_KEY_ENV  # read when ``api_key`` is None
    iam_url: str | None = None  # the token endpoint's base URL; None: ``url``
    ca: str | None = None  # PEM file of the CA to trust; None: the system's CAs
    verify: bool = True
    timeout: float = 10.0

    def key(self) -> str:
        key = self.api_key if self.api_key is not None else os.environ.get(self.api_key_env)
        if not key:
            raise ProviderUnavailable(
                f"no Key Protect API key: set api_key in the configuration or ${self.api_key_env}"
            )
        return key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check(check_key: bytes, header: bytes, ciphertext: bytes) -> bytes:
    return hmac.new(check_key, header + ciphertext, hashlib.sha256).digest()


class KeyProtectProvider:
    def __init__(
        self, config: KeyProtectConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ):
        self._config = config
        verify: ssl.SSLContext | bool
        if not config.verify:
            verify = False
        elif config.ca:
            verify = ssl.create_default_context(cafile=config.ca)
        else:
            verify = True
        self._verify = verify
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._base = config.url.rstrip("/")
        self._iam = (config.iam_url or config.url).rstrip("/")
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock: asyncio.Lock | None = None
        self._versions: dict[str, list[str]] = {}  # key id -> version ids, oldest first

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    # -- HTTP ----------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        """The HTTP client of the running event loop (its connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(
                verify=self._verify,
                timeout=self._config.timeout,
                transport=self._transport,
                follow_redirects=False,
            )
            self._loop = loop
            self._token_lock = asyncio.Lock()
        return self._http

    async def _bearer(self) -> str:
        http = self._client()
        assert self._token_lock is not None
        async with self._token_lock:
            if self._token is not None and time.monotonic() < self._token_expires:
                return self._token
            try:
                response = await http.post(
                    self._iam + "/identity/token",
                    data={"grant_type": GRANT_TYPE, "apikey": self._config.key()},
                    headers={"Accept": "application/json"},
                )
            except httpx.HTTPError as exc:
                raise ProviderUnavailable(
                    f"Key Protect token endpoint {self._iam} unreachable: {type(exc).__name__}"
                ) from None
            if response.status_code != 200:
                raise ProviderUnavailable(
                    f"Key Protect token endpoint {self._iam} refused the API key "
                    f"(HTTP {response.status_code})"
                )
            try:
                body = response.json()
                token = str(body["access_token"])
                lifetime = float(body.get("expires_in", 3600))
            except (ValueError, KeyError, TypeError):
                raise ProviderUnavailable("Key Protect token endpoint answered no token") from None
            self._token = token
            self._token_expires = time.monotonic() + max(lifetime - TOKEN_MARGIN, lifetime / 2)
            return token

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content_type: str = ACTION_TYPE,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        for attempt in (1, 2):
            headers = {
                "Authorization": f"Bearer {await self._bearer()}",
                "Bluemix-Instance": self._config.instance_id,
                "Accept": "application/json",
            }
            if json is not None:
                headers["Content-Type"] = content_type
            try:
                response = await self._client().request(
                    method,
                    f"{self._base}/api/v2{path}",
                    json=json,
                    headers=headers,
                    params=params,
                )
            except httpx.HTTPError as exc:
                raise ProviderUnavailable(
                    f"Key Protect at {self._base} unreachable: {type(exc).__name__}"
                ) from None
            if response.status_code == 401 and attempt == 1:
                self._token = None  # revoked or expired early: one new token
                continue
            if response.status_code in (401, 403):
                raise ProviderUnavailable(
                    f"Key Protect at {self._base} refused kmipd's credential "
                    f"(HTTP {response.status_code}): check the API key, its role and instance_id"
                )
            if response.status_code >= 500 or response.status_code == 429:
                raise ProviderUnavailable(
                    f"Key Protect at {self._base} failed (HTTP {response.status_code})"
                )
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _refuse(self, key_id: str, action: str, response: httpx.Response) -> ProviderError:
        """The error for a 4xx answer: the key's state when that forbids the action."""
        state = (await self.status(key_id)).state
        if state not in (KeyState.ACTIVE, KeyState.DEACTIVATED) or (
            action in ("wrap", "rotate") and state != KeyState.ACTIVE
        ):
            return KeyNotUsable(key_id, state, action)
        if action == "unwrap":
            return WrappedKeyInvalid()
        return ProviderError(f"root key {key_id} cannot {action} (HTTP {response.status_code})")

    async def _version_ids(self, key_id: str, refresh: bool = False) -> list[str]:
        if not refresh and key_id in self._versions:
            return self._versions[key_id]
        response = await self._request(
            "GET",
            f"/keys/{key_id}/versions",
            params={"allKeyStates": "true", "totalCount": "true", "limit": "5000"},
        )
        if response.status_code != 200:
            raise await self._refuse(key_id, "list its versions", response)
        try:
            ids = [str(v["id"]) for v in response.json()["resources"]]
        except (ValueError, KeyError, TypeError):
            raise ProviderError(f"Key Protect answered no versions of {key_id}") from None
        ids.reverse()  # Key Protect lists the newest first
        self._versions[key_id] = ids
        return ids

    async def _version_number(self, key_id: str, version_id: str) -> int:
        for refresh in (False, True):
            ids = await self._version_ids(key_id, refresh=refresh)
            if version_id in ids:
                return ids.index(version_id) + 1
        raise ProviderError(f"Key Protect names an unknown version of root key {key_id}")

    # -- the contract --------------------------------------------------------------------

    async def create(self, name: str) -> str:
        body = {
            "metadata": {"collectionType": KEY_TYPE, "collectionTotal": 1},
            "resources": [{"type": KEY_TYPE, "name": name, "extractable": False}],
        }
        response = await self._request("POST", "/keys", json=body, content_type=KEY_TYPE)
        if response.status_code not in (200, 201):
            raise ProviderError(
                f"Key Protect did not create a root key (HTTP {response.status_code})"
            )
        try:
            return str(response.json()["resources"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise ProviderError("Key Protect answered no key id") from None

    async def wrap(self, key_id: str, plaintext: bytes, aad: bytes) -> bytes:
        check_plaintext(plaintext, CAPABILITIES)
        draft = BlobHeader(ProviderKind.KEYPROTECT, Mechanism.AES_GCM, key_id, 1)
        check_key = os.urandom(CHECK_SIZE)
        body = {"plaintext": _b64(plaintext + check_key), "aad": [_b64(bound_aad(draft, aad))]}
        response = await self._request("POST", f"/keys/{key_id}/actions/wrap", json=body)
        if response.status_code != 200:
            raise await self._refuse(key_id, "wrap", response)
        try:
            result = response.json()
            ciphertext = str(result["ciphertext"]).encode("ascii")
            version_id = str(result["keyVersion"]["id"])
        except (ValueError, KeyError, TypeError, UnicodeEncodeError):
            raise ProviderError("Key Protect answered no ciphertext") from None
        version = await self._version_number(key_id, version_id)
        head = BlobHeader(ProviderKind.KEYPROTECT, Mechanism.AES_GCM, key_id, version).encode()
        return head + _check(check_key, head, ciphertext) + ciphertext

    async def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        header, rest = parse_blob(blob)
        tag, body = rest[:CHECK_SIZE], rest[CHECK_SIZE:]
        if (
            header.kind != ProviderKind.KEYPROTECT
            or header.mechanism != Mechanism.AES_GCM
            or not _KEY_ID.match(header.key_id)
        ):
            raise WrappedKeyInvalid()
        try:
            ciphertext = body.decode("ascii")
            canonical = _b64(base64.b64decode(ciphertext, validate=True))
        except (UnicodeDecodeError, binascii.Error, ValueError):
            raise WrappedKeyInvalid() from None
        if not ciphertext or canonical != ciphertext:  # one text per ciphertext
            raise WrappedKeyInvalid()
        key_id = header.key_id
        request = {"ciphertext": ciphertext, "aad": [_b64(bound_aad(header, aad))]}
        response = await self._request("POST", f"/keys/{key_id}/actions/unwrap", json=request)
        if response.status_code != 200:
            raise await self._refuse(key_id, "unwrap", response)
        try:
            result = response.json()
            payload = base64.b64decode(result["plaintext"], validate=True)
            version_id = str(result["keyVersion"]["id"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise ProviderError("Key Protect answered no plaintext") from None
        plaintext, check_key = payload[:-CHECK_SIZE], payload[-CHECK_SIZE:]
        expected = _check(check_key, blob[: len(blob) - len(rest)], body)
        if len(payload) <= CHECK_SIZE or not hmac.compare_digest(expected, tag):
            raise WrappedKeyInvalid()
        if await self._version_number(key_id, version_id) != header.version:
            raise WrappedKeyInvalid()
        return plaintext

    async def rotate(self, key_id: str) -> int:
        response = await self._request("POST", f"/keys/{key_id}/actions/rotate", json={})
        if response.status_code not in (200, 204):
            raise await self._refuse(key_id, "rotate", response)
        return len(await self._version_ids(key_id, refresh=True))

    async def status(self, key_id: str) -> RootKeyStatus:
        response = await self._request("GET", f"/keys/{key_id}/metadata")
        if response.status_code in (404, 400):
            return RootKeyStatus(key_id, KeyState.MISSING, 0)
        if response.status_code == 410:
            return RootKeyStatus(key_id, KeyState.DELETED, 0)
        if response.status_code != 200:
            raise ProviderError(
                f"Key Protect did not report root key {key_id} (HTTP {response.status_code})"
            )
        try:
            key = response.json()["resources"][0]
            raw_state = int(key["state"])
            extractable = bool(key.get("extractable", False))
        except (ValueError, KeyError, IndexError, TypeError):
            raise ProviderError(f"Key Protect answered no state for {key_id}") from None
        if extractable:  # a standard key is no root key
            return RootKeyStatus(key_id, KeyState.MISSING, 0)
        state = _STATES.get(raw_state, KeyState.DISABLED)
        if state == KeyState.DELETED:
            return RootKeyStatus(key_id, state, 0)
        return RootKeyStatus(key_id, state, len(await self._version_ids(key_id, refresh=True)))

    async def _state_change(self, key_id: str, method: str, path: str, action: str) -> None:
        response = await self._request(method, path, json={} if method == "POST" else None)
        if response.status_code not in (200, 204):
            state = (await self.status(key_id)).state
            if state in (KeyState.MISSING, KeyState.DELETED):
                raise KeyNotUsable(key_id, state, action)
            raise ProviderError(f"root key {key_id} cannot {action} (HTTP {response.status_code})")

    async def disable(self, key_id: str) -> None:
        await self._state_change(key_id, "POST", f"/keys/{key_id}/actions/disable", "be disabled")

    async def enable(self, key_id: str) -> None:
        await self._state_change(key_id, "POST", f"/keys/{key_id}/actions/enable", "be enabled")

    async def delete(self, key_id: str) -> None:
        await self._state_change(key_id, "DELETE", f"/keys/{key_id}", "be deleted")
        self._versions.pop(key_id, None)

    async def health(self) -> Health:
        try:
            response = await self._request("GET", "/keys", params={"limit": "1"})
        except ProviderError as exc:
            return Health(False, str(exc))
        if response.status_code != 200:
            return Health(
                False,
                f"Key Protect at {self._base} answered HTTP {response.status_code}: "
                "check url and instance_id",
            )
        return Health(
            True, f"Key Protect at {self._base} reachable, instance {self._config.instance_id}"
        )

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None and self._loop is asyncio.get_running_loop():
            await http.aclose()
