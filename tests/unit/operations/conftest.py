"""An in-process engine on a real store (SQLite and PostgreSQL: every test runs on both) and
keyring, for fast operation tests.

Wired as :mod:`kmipd.app` wires it (no TLS, no subprocess); a fixed, settable clock, so
date-driven transitions are tested without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kmipd.keys.instance_keys import InstanceKeys
from kmipd.keys.keyring import Keyring
from kmipd.operations import REGISTRY
from kmipd.protocol import messages
from kmipd.protocol._generated import BatchErrorContinuationOption, ObjectType, Operation
from kmipd.protocol.limits import Limits
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.tables import VERSIONS, Version
from kmipd.service.context import ServerInfo
from kmipd.service.engine import KmipEngine
from kmipd.service.identity import ClientIdentity
from kmipd.service.repository import ObjectRepository
from kmipd.store.records import InstanceRecord
from kmipd.store.store import Store

NOW = 1_700_000_000


@dataclass
class EngineHarness:
    """Runs request batches through a real :class:`KmipEngine`, one client per instance."""

    engine: KmipEngine
    store: Store
    keyring: Keyring
    loop: asyncio.AbstractEventLoop
    clock: list[float] = field(default_factory=lambda: [float(NOW)])

    @property
    def now(self) -> int:
        return int(self.clock[0])

    def advance(self, seconds: int) -> None:
        self.clock[0] += seconds

    def add_instance(self, name: str) -> None:
        root = self.keyring.create(f"root of {name}")
        self.loop.run_until_complete(self.store.add_instance(InstanceRecord(name, root, NOW)))

    def batch(
        self,
        *items: tuple[Operation, Any],
        version: Version = (2, 1),
        instance: str = "default",
        option: BatchErrorContinuationOption | None = None,
    ) -> list[messages.ResponseBatchItem]:
        request = messages.RequestMessage(
            header=messages.RequestHeader(
                protocol_version=ProtocolVersion.of(version),
                batch_error_continuation_option=option,
                batch_count=len(items),
            ),
            batch_items=[
                messages.RequestBatchItem(operation=op, payload=payload) for op, payload in items
            ],
        )
        client = ClientIdentity(instance, "fingerprint-" + instance, "CN=test")
        tree = messages.request_to_item(request)
        response = self.loop.run_until_complete(self.engine.process(tree, client))
        return messages.response_from_item(response).batch_items

    def call(self, operation: Operation, payload: Any, **kwargs: Any) -> messages.ResponseBatchItem:
        return self.batch((operation, payload), **kwargs)[0]


@pytest.fixture
def kmip(tmp_path: Path, store_url: str) -> Iterator[EngineHarness]:
    loop = asyncio.new_event_loop()
    store = Store.from_url(store_url, base=tmp_path)
    keyring = Keyring(tmp_path / "keyring" / "root-keys.json")
    loop.run_until_complete(store.open())
    clock = [float(NOW)]
    engine = KmipEngine(
        ObjectRepository(store, InstanceKeys(store, keyring)),
        ServerInfo(
            vendor_identification="kmipd test",
            versions=tuple(sorted(VERSIONS, reverse=True)),
            operations=tuple(REGISTRY),
            object_types=(ObjectType.SYMMETRIC_KEY, ObjectType.SECRET_DATA),
        ),
        Limits(),
        clock=lambda: clock[0],
    )
    harness = EngineHarness(engine, store, keyring, loop, clock)
    harness.add_instance("default")
    try:
        yield harness
    finally:
        loop.run_until_complete(store.close())
        loop.close()
