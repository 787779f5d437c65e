"""Per-request state, handed to each operation: never kept on shared objects."""

from __future__ import annotations

from dataclasses import dataclass, field

from kmipd.protocol.tables import Version
from kmipd.service.identity import ClientIdentity
from kmipd.service.repository import ObjectRepository


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What Query and DiscoverVersions report."""

    vendor_identification: str
    versions: tuple[Version, ...]  # newest first
    operations: tuple[int, ...] = ()  # what Query Operations reports: the registry's keys
    object_types: tuple[int, ...] = ()


@dataclass(slots=True)
class RequestContext:
    client: ClientIdentity
    version: Version
    now: int  # seconds since the epoch, one value for the whole message
    objects: ObjectRepository
    server: ServerInfo
    # The ID Placeholder: the UID the previous operation of this batch produced.
    id_placeholder: str | None = None
    # Free for operations to note what the audit trail should record.
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def instance(self) -> str:
        return self.client.instance
