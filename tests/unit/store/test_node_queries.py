"""The node registry (schema version 5) on SQLite and PostgreSQL: rows written, replaced and
deleted as a node's heartbeats and shutdown do; a database of version 4 gets the table from
``kmipd migrate``, twice without harm; the registry service survives a store that is down
and registers once it is back; a node that missed 3 heartbeats is unreachable."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest

from kmipd import config, pki
from kmipd.service.node_registry import (
    FORGET_AFTER,
    NOT_READY,
    READY,
    UNREACHABLE,
    NodeAddress,
    NodeRegistry,
    certificate_names,
    state,
)
from kmipd.store.migrations import LATEST, SchemaMismatch
from kmipd.store.node_queries import NodeRecord
from kmipd.store.store import Store, StoreError
from tests.support.postgres import fresh_database


def make(url: str, tmp_path: Path) -> Store:
    return Store.from_url(url, base=tmp_path, pool_size=2)


def node(node_id: str = "kms1:5696", **changes: object) -> NodeRecord:
    record = NodeRecord(
        node_id=node_id,
        name=node_id.split(":")[0],
        kmip_port=int(node_id.split(":")[1]),
        kmip_endpoints=(node_id, "[::1]:5696"),
        https_port=8443,
        version="1.2.3",
        started=1_700_000_000.25,
        last_seen=1_700_000_100.5,
        heartbeat_seconds=10.0,
        checks={"store": "ok", "root_key_provider.hsm": "failed: ProviderError"},
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def test_rows_are_written_replaced_and_deleted(store_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        store = make(store_url, tmp_path)
        await store.open()
        try:
            assert await store.nodes() == []
            one, two = node("kms1:5696"), node("kms2:5696", checks={"store": "ok"})
            await store.put_node(two)
            await store.put_node(one)
            assert await store.nodes() == [one, two]  # by id, every field read back as written

            # A heartbeat replaces the row; a restart (new started) takes the same row back.
            later = dataclasses.replace(one, last_seen=one.last_seen + 10, checks={"store": "ok"})
            await store.put_node(later)
            restarted = dataclasses.replace(later, started=later.started + 60, version="1.2.4")
            await store.put_node(restarted)
            assert await store.nodes() == [restarted, two]

            # Only the process that wrote the row deletes it on shutdown.
            assert await store.remove_node("kms1:5696", one.started) is False
            assert await store.remove_node("kms1:5696", restarted.started) is True
            assert await store.nodes() == [two]

            # Rows not written since a time are forgotten; newer ones stay.
            await store.put_node(node("kms3:5696", last_seen=two.last_seen + 1))
            assert await store.forget_nodes(two.last_seen + 0.5) == 1
            assert [r.node_id for r in await store.nodes()] == ["kms3:5696"]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_version_4_database_gets_the_registry_from_migrate(store_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        store = make(store_url, tmp_path)
        await store.open()
        await store._write("DROP TABLE nodes")
        await store._write("UPDATE schema_version SET version = ?", (4,))
        await store.close()

        refused = make(store_url, tmp_path)
        needs = f"is version 4, this kmipd needs version {LATEST}"
        with pytest.raises(SchemaMismatch, match=needs):
            await refused.open()

        for _ in range(2):  # the migration is idempotent: a second run over the table is fine
            migrated = make(store_url, tmp_path)
            assert await migrated.open(migrate=True) == [5]
            await migrated.put_node(node())
            assert [r.node_id for r in await migrated.nodes()] == ["kms1:5696"]
            await migrated._write("UPDATE schema_version SET version = ?", (4,))
            await migrated.close()

    asyncio.run(scenario())


def test_state_ready_not_ready_and_unreachable_after_3_heartbeats() -> None:
    healthy = node(checks={"store": "ok", "root_key_provider": "ok"})
    assert state(healthy, healthy.last_seen) == READY
    assert state(node(), node().last_seen) == NOT_READY  # a provider check failed
    assert state(healthy, healthy.last_seen + 30) == READY  # 3 heartbeats of 10 s: not yet
    assert state(healthy, healthy.last_seen + 30.1) == UNREACHABLE
    slow = dataclasses.replace(healthy, heartbeat_seconds=60.0)  # its own heartbeat counts
    assert state(slow, slow.last_seen + 170) == READY


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_registry_beats_lists_others_and_deregisters(store_url: str, tmp_path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        store = make(store_url, tmp_path)
        await store.open()

        async def readiness() -> dict[str, str]:
            try:
                await store.ping()
                return {"store": "ok"}
            except StoreError as exc:
                return {"store": f"failed: {type(exc).__name__}"}

        def registry(port: int) -> NodeRegistry:
            address = NodeAddress("kms", port, (f"kms:{port}", f"127.0.0.1:{port}"), port + 1)
            return NodeRegistry(
                store,
                f"kms:{port}",
                lambda: address,
                readiness,
                heartbeat_seconds=3600,
                clock=clock,
            )

        a, b = registry(5696), registry(5697)
        try:
            await a.start()  # each registers at once, in the background
            await b.start()
            for _ in range(100):
                if len(await store.nodes()) == 2:
                    break
                await asyncio.sleep(0.02)
            assert (a.node_id, b.node_id) == ("kms:5696", "kms:5697")
            [seen_by_a] = await a.others()
            assert seen_by_a.node_id == "kms:5697"
            assert seen_by_a.kmip_endpoints == ("kms:5697", "127.0.0.1:5697")
            assert (seen_by_a.https_port, seen_by_a.checks) == (5698, {"store": "ok"})
            assert state(seen_by_a, clock.now) == READY

            # b stops beating (its heartbeat is an hour): 3 heartbeats later it is unreachable.
            clock.now += 3 * 3600 + 1
            [stale] = await a.others()
            assert state(stale, clock.now) == UNREACHABLE and stale.last_seen == seen_by_a.last_seen

            # A row not written for FORGET_AFTER is deleted by another node's heartbeat.
            clock.now += FORGET_AFTER
            await a.beat()
            assert await a.others() == []
            await b.beat()
            assert [r.node_id for r in await a.others()] == ["kms:5697"]

            await b.close()  # a clean stop deletes b's row, and only b's
            assert await a.others() == []
            assert [r.node_id for r in await store.nodes()] == ["kms:5696"]
        finally:
            await a.close()
            await b.close()
            assert await store.nodes() == []
            await store.close()

    asyncio.run(scenario())


def test_registry_survives_a_store_that_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not yet open, a PostgreSQL store refuses every call with StoreError as it does when
    the database is gone: the heartbeat logs it and tries again; once the store answers, the
    node is registered. (PostgreSQL only: an unopened SQLite store's worker thread does not
    answer a non-durable write; a real outage is in tests/integration/test_cluster_nodes.py.)"""

    async def scenario(url: str) -> None:
        store = make(url, tmp_path)

        async def readiness() -> dict[str, str]:
            return {"store": "ok"}

        address = NodeAddress("kms", 5696, ("kms:5696",), 8443)
        registry = NodeRegistry(
            store, "kms:5696", lambda: address, readiness, heartbeat_seconds=0.05
        )
        with caplog.at_level(logging.WARNING, "kmipd.service.node_registry"):
            await registry.start()  # does not raise
            await asyncio.sleep(0.3)
        failures = [r for r in caplog.records if "node registry" in r.getMessage()]
        assert len(failures) >= 2, caplog.text  # the first attempt and the retries
        assert all(r.exc_info is None for r in failures)  # one line each, no traceback
        await store.open()
        try:
            for _ in range(100):
                if await store.nodes():
                    break
                await asyncio.sleep(0.05)
            [row] = await store.nodes()
            assert row.node_id == "kms:5696"
            await registry.close()
            assert await store.nodes() == []
        finally:
            await registry.close()
            await store.close()

    with fresh_database("registry_outage") as url:
        asyncio.run(scenario(url))


def test_certificate_names_put_this_host_first(tmp_path: Path) -> None:
    """A certificate shared by the nodes of a cluster names them all: each node lists its own
    name first, loopback names last."""
    ca = pki.create_ca()
    server = pki.issue_server(ca, ["kms1.example.com", "localhost", "kms2.example.com", "::1"])
    pki.write_public(tmp_path / "server.pem", server.certificate_pem())
    settings = config.Settings(
        data_dir=tmp_path, tls=config.TlsSettings(certificate=str(tmp_path / "server.pem"))
    )
    assert certificate_names(settings, "kms2") == [
        "kms2.example.com",
        "kms1.example.com",
        "localhost",
        "::1",
    ]
    assert certificate_names(settings, "kms1.example.com")[0] == "kms1.example.com"
    assert certificate_names(settings, "elsewhere")[:2] == ["kms1.example.com", "kms2.example.com"]
