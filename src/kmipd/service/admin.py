"""What the management API does: instances, allowed certificates, the key inventory.

The routes in :mod:`kmipd.api.routes` are thin: they check the caller's role, call this, and
turn an :class:`AdminError` into an HTTP status. Messages say what to change; they never
carry key material, secrets, paths or SQL.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kmipd import config, pki
from kmipd.keys.instance_keys import InstanceKeys
from kmipd.keys.keyring import Keyring, KeyringError
from kmipd.keys.providers.base import KeyState, ProviderError
from kmipd.model.attribute_set import AttributeSet
from kmipd.model.lifecycle import DESTROYED_STATES
from kmipd.protocol import ttlv
from kmipd.protocol._generated import (
    ENUM_CLASSES,
    CryptographicAlgorithm,
    ObjectType,
    State,
    Tag,
)
from kmipd.service.errors import ConcurrentUpdate, KmipError
from kmipd.service.identity import certificate_subject
from kmipd.service.repository import ObjectRepository
from kmipd.store.records import CertificateRecord, InstanceRecord, InventoryRow
from kmipd.store.store import Store, StoreError
from kmipd.transport.tls import fingerprint

log = logging.getLogger(__name__)

# The tags vCenter and ESXi put on each key (AddAttribute, KMIP custom attributes).
VMWARE_TAGS = (
    "x-Name",
    "x-Component",
    "x-Identifier",
    "x-Product",
    "x-Vendor",
    "x-Product_Version",
)

INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_UPDATE_ATTEMPTS = 5
MAX_CERTIFICATE_DAYS = 365 * 10
MAX_ROTATION_DAYS = 365 * 100


class AdminError(Exception):
    """A request the management API refuses. ``kind``: invalid, not_found or conflict."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message


def _not_found_instance(name: str) -> AdminError:
    return AdminError("not_found", "instance_not_found", f"no instance named {name!r}")


def enum_name(enum: type, value: int | None) -> str | None:
    """``SymmetricKey``, ``PreActive``, ``AES``: a KMIP enumeration value's name."""
    if value is None:
        return None
    try:
        member = enum(value)
    except ValueError:
        return f"0x{value:08X}"
    if enum is CryptographicAlgorithm:
        return str(member.name)
    return str(member.name).title().replace("_", "")


def parse_enum(enum: type, text: str, what: str) -> int:
    """The value of a KMIP enumeration from its name (any case, with or without ``_``)."""
    wanted = text.replace("_", "").replace("-", "").replace(" ", "").lower()
    for member in enum:  # type: ignore[attr-defined]
        if member.name.replace("_", "").lower() == wanted:
            return int(member.value)
    names = ", ".join(enum_name(enum, int(m.value)) or "" for m in enum)  # type: ignore[attr-defined]
    raise AdminError("invalid", f"invalid_{what}", f"unknown {what} {text!r}; use one of {names}")


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    name: str
    root_key_id: str
    created: int
    certificates: int
    keys: int  # objects not destroyed
    objects_by_state: dict[str, int]
    provider: str = "builtin"  # the root key provider that holds root_key_id
    rotation_days: float | None = None  # scheduled rotation; None: off
    last_rotated: float | None = None


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One managed object as the inventory shows it: metadata only, never key material."""

    uid: str
    object_type: str
    state: str
    algorithm: str | None
    length: int | None
    name: str | None
    tags: dict[str, str]
    created: int
    updated: int
    last_fetched: int | None
    last_fetched_by: str | None
    has_material: bool
    attributes: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeyFilter:
    states: tuple[int, ...] | None = None
    object_types: tuple[int, ...] | None = None
    x_name: str | None = None  # substring, case-insensitive
    x_component: str | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    record: CertificateRecord
    private_key_pem: str = field(repr=False)


class AdminService:
    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        instance_keys: InstanceKeys,
        objects: ObjectRepository,
        settings: config.Settings,
        trust_changed: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._keyring = keyring
        self._instance_keys = instance_keys
        self._objects = objects
        self._settings = settings
        self._trust_changed = trust_changed
        self._clock = clock

    # -- instances -----------------------------------------------------------------------

    async def _instance_record(self, name: str) -> InstanceRecord:
        for record in await self._store.instances():
            if record.name == name:
                return record
        raise _not_found_instance(name)

    async def _info(self, record: InstanceRecord) -> InstanceInfo:
        counts = await self._store.object_counts(record.name)
        certificates = await self._store.certificates(record.name)
        return InstanceInfo(
            name=record.name,
            root_key_id=record.root_key_id,
            created=record.created,
            certificates=len(certificates),
            keys=sum(n for s, n in counts.items() if s not in DESTROYED_STATES),
            objects_by_state={enum_name(State, s) or "": n for s, n in sorted(counts.items())},
            provider=record.provider,
            rotation_days=record.rotation_days,
            last_rotated=record.last_rotated,
        )

    async def set_rotation_days(self, name: str, days: float | None) -> InstanceInfo:
        """Rotate the instance's keys every ``days`` days (a fraction works), or never (None).
        The serving processes' schedule check does it (``kmipd.service.rewrap``)."""
        if days is not None and not 0 < days <= MAX_ROTATION_DAYS:
            raise AdminError(
                "invalid",
                "invalid_rotation_days",
                f"rotation_days must be more than 0 and at most {MAX_ROTATION_DAYS}",
            )
        if not await self._store.set_rotation_days(name, days):
            raise _not_found_instance(name)
        return await self.instance(name)

    async def instances(self) -> list[InstanceInfo]:
        return [await self._info(r) for r in await self._store.instances()]

    async def instance(self, name: str) -> InstanceInfo:
        return await self._info(await self._instance_record(name))

    async def create_instance(
        self, name: str, root_key_id: str | None, provider: str | None = None
    ) -> tuple[InstanceInfo, bool]:
        """A new instance bound to ``root_key_id`` in the named root key ``provider``
        (default: the built-in keyring), or to a new root key made there when None.
        Returns it and whether a root key was made."""
        if not INSTANCE_NAME.match(name):
            raise AdminError(
                "invalid",
                "invalid_name",
                "an instance name is 1-64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit",
            )
        if any(r.name == name for r in await self._store.instances()):
            raise AdminError("conflict", "instance_exists", f"an instance named {name!r} exists")
        created_root_key = root_key_id is None
        provider = provider or "builtin"
        if provider != "builtin":
            root_key_id = await self._provider_root_key(name, provider, root_key_id)
        elif root_key_id is None:
            root_key_id = self._keyring.create(f"root key of instance {name}")
        else:
            root_key_id = self._check_root_key(root_key_id)
        record = InstanceRecord(name, root_key_id, int(self._clock()), provider=provider)
        try:
            await self._store.add_instance(record)
        except StoreError:
            raise AdminError(
                "conflict", "instance_exists", f"an instance named {name!r} exists"
            ) from None
        self._instance_keys.forget(name)
        return await self._info(record), created_root_key

    async def _provider_root_key(self, name: str, provider: str, root_key_id: str | None) -> str:
        """A new root key in ``provider``, or ``root_key_id`` once it is checked Active."""
        source = self._instance_keys.providers.get(provider)
        if source is None:
            known = ", ".join(sorted(self._instance_keys.providers))
            raise AdminError(
                "invalid",
                "invalid_provider",
                f"no root key provider named {provider!r}; configured: {known}",
            )
        try:
            if root_key_id is None:
                return await source.create(f"root key of instance {name}")
            state = (await source.status(root_key_id)).state
        except ProviderError as exc:
            raise AdminError(
                "invalid", "provider_unavailable", f"root key provider {provider!r}: {exc}"
            ) from None
        if state != KeyState.ACTIVE:
            raise AdminError(
                "invalid",
                "invalid_root_key",
                f"root key {root_key_id} in provider {provider!r} is {state.value}; bind the "
                "instance to an active root key",
            )
        return root_key_id

    def _check_root_key(self, root_key_id: str) -> str:
        """The id of the root key ``root_key_id`` names (an id or an alias): the instance is
        bound to the key itself, never to an alias that may later name another key."""
        try:
            record = self._keyring.get(root_key_id)
        except KeyringError:
            raise AdminError(
                "invalid",
                "invalid_root_key",
                f"no built-in root key with id {root_key_id}; check the id, or leave "
                "root_key_id out to make a new root key",
            ) from None
        if record.deleted:
            raise AdminError(
                "invalid",
                "invalid_root_key",
                f"root key {root_key_id} was deleted; bind the instance to another root key",
            )
        if not record.is_root:
            raise AdminError(
                "invalid",
                "invalid_root_key",
                f"{root_key_id} is a standard key (its material can be read through the API), "
                "not a root key; bind the instance to a root key",
            )
        return record.id

    async def delete_instance(self, name: str, force: bool) -> int:
        """Remove an instance, its certificates and objects; the number of keys it still
        had. Refused while it has keys that are not destroyed, unless ``force``."""
        info = await self.instance(name)
        if info.keys and not force:
            raise AdminError(
                "conflict",
                "instance_has_keys",
                f"instance {name!r} still has {info.keys} key(s) that are not destroyed; "
                "delete them first, or delete with force=true to destroy them with the instance",
            )
        await self._store.delete_instance(name)
        self._instance_keys.forget(name)
        await self._trust_changed()
        return info.keys

    # -- certificates --------------------------------------------------------------------

    async def certificates(self, instance: str) -> list[CertificateRecord]:
        await self._instance_record(instance)
        return await self._store.certificate_details(instance=instance)

    async def certificate(self, instance: str, fp: str) -> CertificateRecord:
        found = await self._store.certificate_details(instance=instance, fingerprint=fp.lower())
        if not found:
            raise AdminError(
                "not_found",
                "certificate_not_found",
                f"instance {instance!r} has no allowed certificate with fingerprint {fp}",
            )
        return found[0]

    async def pin(self, instance: str, pem: str) -> CertificateRecord:
        """Allow exactly this client certificate on ``instance``."""
        certificate = _one_certificate(pem)
        _check_dates(certificate)
        return await self._add(instance, certificate, is_ca=False)

    async def trust_ca(self, instance: str, pem: str) -> CertificateRecord:
        """Allow every client certificate this CA issued (vCenter's root CA)."""
        certificate = _one_certificate(pem)
        _check_dates(certificate)
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            is_ca = constraints.value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise AdminError(
                "invalid",
                "not_a_ca",
                "this certificate is not a CA (no BasicConstraints CA=true); upload it as a "
                "client certificate instead",
            )
        return await self._add(instance, certificate, is_ca=True)

    async def issue(self, instance: str, common_name: str, days: int) -> IssuedCredentials:
        """A client certificate and private key made here, signed by kmipd's CA, allowed on
        ``instance``. The private key is returned once and not kept."""
        await self._instance_record(instance)
        issued = pki.issue_client(self._ca(), common_name, days=days)
        record = await self._add(instance, issued.certificate, is_ca=False)
        return IssuedCredentials(record, issued.private_key_pem().decode("ascii"))

    async def sign_csr(self, instance: str, csr_pem: str, days: int) -> CertificateRecord:
        """vCenter's CSR signed by kmipd's CA; the certificate is allowed on ``instance``."""
        await self._instance_record(instance)
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode("ascii", "replace"))
        except ValueError:
            raise AdminError(
                "invalid",
                "invalid_csr",
                "csr is not a PEM certificate signing request (-----BEGIN CERTIFICATE "
                "REQUEST-----)",
            ) from None
        try:
            certificate = pki.sign_csr(self._ca(), csr, days=days)
        except pki.CsrError as exc:
            raise AdminError("invalid", "invalid_csr", str(exc)) from None
        return await self._add(instance, certificate, is_ca=False)

    def ca_certificate_pem(self) -> str:
        s = self._settings
        return s.path(s.tls.ca).read_text(encoding="ascii")

    def _ca(self) -> pki.Issued:
        s = self._settings
        try:
            return pki.load_ca(s.path(s.tls.ca), s.path(s.tls.ca_key))
        except (OSError, ValueError):
            log.exception("cannot load the CA to issue a certificate")
            raise AdminError(
                "unavailable",
                "ca_unavailable",
                "this server cannot sign certificates: its CA private key is missing or "
                "unreadable; upload a certificate instead",
            ) from None

    async def _add(
        self, instance: str, certificate: x509.Certificate, *, is_ca: bool
    ) -> CertificateRecord:
        await self._instance_record(instance)
        der = certificate.public_bytes(serialization.Encoding.DER)
        fp = fingerprint(der)
        existing = await self._store.certificate_details(fingerprint=fp)
        if existing:
            where = existing[0].instance
            raise AdminError(
                "conflict",
                "certificate_in_use",
                f"this certificate (SHA-256 {fp}) is already allowed on instance {where!r}; "
                + (
                    "nothing to do"
                    if where == instance
                    else "a certificate belongs to one instance: delete it there first"
                ),
            )
        record = CertificateRecord(
            fingerprint=fp,
            instance=instance,
            pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            subject=certificate_subject(certificate),
            is_ca=is_ca,
            created=int(self._clock()),
        )
        try:
            await self._store.add_certificate(record)
        except StoreError:
            raise AdminError(
                "conflict",
                "certificate_in_use",
                f"this certificate (SHA-256 {fp}) is already allowed on an instance",
            ) from None
        await self._trust_changed()
        return record

    async def remove_certificate(self, instance: str, fp: str) -> CertificateRecord:
        """Stop allowing a certificate: refused from the next connection, and open
        connections that use it are cut before their next request."""
        record = await self.certificate(instance, fp)
        await self._store.remove_certificate(record.fingerprint)
        await self._trust_changed()
        return record

    # -- key inventory -------------------------------------------------------------------

    async def keys(self, instance: str, wanted: KeyFilter) -> tuple[list[KeyInfo], int]:
        await self._instance_record(instance)
        rows = await self._store.inventory(
            instance, object_types=wanted.object_types, states=wanted.states
        )
        found = []
        for row in rows:
            info = _key_info(row, full=False)
            if _contains(info.tags.get("x-Name"), wanted.x_name) and _contains(
                info.tags.get("x-Component"), wanted.x_component
            ):
                found.append(info)
        return found[wanted.offset : wanted.offset + wanted.limit], len(found)

    async def key(self, instance: str, uid: str) -> KeyInfo:
        await self._instance_record(instance)
        rows = await self._store.inventory(instance, uid=uid)
        if not rows:
            raise AdminError(
                "not_found", "key_not_found", f"instance {instance!r} has no key with UID {uid}"
            )
        return _key_info(rows[0], full=True)

    async def destroy_key(self, instance: str, uid: str) -> KeyInfo:
        """Destroy one key whatever its state: its sealed material is removed for good, its
        metadata stays with state Destroyed (Destroyed Compromised if it was compromised)."""
        await self._instance_record(instance)
        for attempt in range(1, _UPDATE_ATTEMPTS + 1):
            try:
                obj = await self._objects.get(instance, uid)
            except KmipError:
                raise AdminError(
                    "not_found",
                    "key_not_found",
                    f"instance {instance!r} has no key with UID {uid}",
                ) from None
            now = int(self._clock())
            compromised = obj.state in (State.COMPROMISED, State.DESTROYED_COMPROMISED)
            obj.state = State.DESTROYED_COMPROMISED if compromised else State.DESTROYED
            if "Destroy Date" not in obj.attributes:
                obj.attributes.set("Destroy Date", now, ttlv.DATE_TIME)
            obj.attributes.set("Last Change Date", now, ttlv.DATE_TIME)
            try:
                await self._objects.save(obj, now, destroy_body=True)
            except ConcurrentUpdate:
                if attempt == _UPDATE_ATTEMPTS:
                    raise
                continue
            break
        return await self.key(instance, uid)


def _contains(value: str | None, wanted: str | None) -> bool:
    if wanted is None:
        return True
    return value is not None and wanted.lower() in value.lower()


def _one_certificate(pem: str) -> x509.Certificate:
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode("ascii", "replace"))
    except ValueError:
        raise AdminError(
            "invalid",
            "invalid_certificate",
            "pem is not a PEM certificate (-----BEGIN CERTIFICATE-----)",
        ) from None
    if len(certificates) != 1:
        raise AdminError(
            "invalid",
            "invalid_certificate",
            f"pem holds {len(certificates)} certificates; upload one at a time",
        )
    return certificates[0]


def _check_dates(certificate: x509.Certificate) -> None:
    now = dt.datetime.now(dt.UTC)
    if certificate.not_valid_after_utc < now:
        raise AdminError(
            "invalid",
            "certificate_expired",
            f"this certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}; "
            "renew it first",
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _plain(name: str, value: Any, type_: int | None) -> Any:
    """An attribute value as JSON, or None for values the inventory does not show (byte
    strings, and structures other than a Name). Enumerations by name, dates as seconds."""
    if type_ == ttlv.ENUMERATION and isinstance(value, int) and name in ENUM_CLASSES:
        return enum_name(ENUM_CLASSES[name], value)
    if isinstance(value, ttlv.Item):
        if value.tag == Tag.NAME:
            name = value.find(Tag.NAME_VALUE)
            return name.value if name is not None else None
        return None
    if isinstance(value, bytes | bytearray):
        return None
    if isinstance(value, bool | int | str):
        return value
    return None


# Attributes the inventory leaves out of "show": derived from the key material.
_HIDDEN_ATTRIBUTES = frozenset(("Digest",))


def _key_info(row: InventoryRow, *, full: bool) -> KeyInfo:
    attributes = AttributeSet.from_bytes(row.attributes)
    tags = {t: v for t in VMWARE_TAGS if (v := _text(attributes.value(t))) is not None}
    name = attributes.value("Name")
    shown: dict[str, list[Any]] = {}
    if full:
        for attribute in attributes:
            if attribute.name in _HIDDEN_ATTRIBUTES:
                continue
            value = _plain(attribute.name, attribute.value, attribute.type)
            if value is not None:
                shown.setdefault(attribute.name, []).append(value)
    return KeyInfo(
        uid=row.uid,
        object_type=enum_name(ObjectType, row.object_type) or "",
        state=enum_name(State, row.state) or "",
        algorithm=enum_name(CryptographicAlgorithm, row.algorithm),
        length=row.length,
        name=_plain("Name", name, None) if name is not None else None,
        tags=tags,
        created=row.created,
        updated=row.updated,
        last_fetched=row.last_fetched,
        last_fetched_by=row.last_fetched_by,
        has_material=row.has_material,
        attributes=shown,
    )
