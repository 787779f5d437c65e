"""The rows of the object store, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ObjectRecord:
    """One managed object. ``sealed`` is the envelope of its KMIP structure, never plaintext.

    ``attributes`` is the TTLV encoding of its attribute list (no secrets); the other
    columns copy what Locate and the inventory filter on, so they can be indexed.
    ``revision`` makes updates compare-and-swap: a writer that read revision N succeeds
    only if the row is still at N.
    """

    uid: str
    instance: str
    object_type: int
    state: int
    attributes: bytes
    sealed: bytes | None
    created: int
    updated: int
    algorithm: int | None = None
    length: int | None = None
    name: str | None = None
    last_fetched: int | None = None
    revision: int = 0
    last_fetched_by: str | None = None  # SHA-256 fingerprint of the fetching certificate


@dataclass(frozen=True, slots=True)
class ObjectQuery:
    """Locate's indexed filters; None means any. Results are in creation order."""

    instance: str
    object_types: tuple[int, ...] | None = None
    states: tuple[int, ...] | None = None
    algorithm: int | None = None
    length: int | None = None
    name: str | None = None
    uids: tuple[str, ...] | None = None
    # Texts the object's custom attributes or Names must each hold (kmipd.model.searchable;
    # the index object_texts): Locate by x-Name then decodes only the objects that can match.
    contains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    name: str
    root_key_id: str
    created: int
    provider: str = "builtin"  # the named root key provider that holds root_key_id
    rotation_days: float | None = None  # scheduled rotation every so many days; None: off
    last_rotated: float | None = None  # when its keys were last rotated (seconds since epoch)


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """An allowed client certificate (pinned) or a trusted CA of an instance."""

    fingerprint: str
    instance: str
    pem: str
    subject: str
    is_ca: bool
    created: int
    last_seen: int | None = None  # last KMIP connection that authenticated with it


@dataclass(frozen=True, slots=True)
class WrappingKeyRecord:
    instance: str
    version: int
    root_key_id: str
    wrapped: bytes
    created: int
    provider: str = "builtin"  # the root key provider that wrapped it


@dataclass(slots=True)
class Snapshot:
    """Everything that decides who may connect: instances and their certificates."""

    instances: list[InstanceRecord] = field(default_factory=list)
    certificates: list[CertificateRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key of a service ID. Only the SHA-256 of the secret is stored."""

    id: str
    service_id: str
    role: str
    secret_hash: str
    created: int
    revoked: int | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class InventoryRow:
    """One object as the key inventory lists it: no sealed body, only whether it has one."""

    uid: str
    object_type: int
    state: int
    algorithm: int | None
    length: int | None
    attributes: bytes
    created: int
    updated: int
    last_fetched: int | None
    last_fetched_by: str | None
    has_material: bool = True


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action. Never holds key material, secrets or request bodies."""

    time: int
    actor: str  # certificate fingerprint (KMIP) or service ID (HTTPS)
    channel: str  # "kmip" or "https"
    action: str  # KMIP operation name, or "METHOD /route/{template}"
    instance: str | None
    uid: str | None
    result: str  # "success" or "failure"
    reason: str | None = None
    seq: int | None = None

    def values(self) -> tuple[object, ...]:
        """What a record says, in column order (what the audit chain hashes)."""
        return (
            self.time,
            self.actor,
            self.channel,
            self.action,
            self.instance,
            self.uid,
            self.result,
            self.reason,
        )


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters (None means any) and one page of the audit trail, newest first."""

    actor: str | None = None
    action: str | None = None
    instance: str | None = None
    uid: str | None = None
    result: str | None = None
    channel: str | None = None
    since: int | None = None
    until: int | None = None
    limit: int = 100
    offset: int = 0
