"""A cluster of two kmipd nodes on one PostgreSQL database, seen from a vCenter-like client.

* Failover: a client runs Creates and Gets against node A, falls over to node B on a
  connection or TLS error and retries the same request there, while node A is SIGKILLed and
  restarted. Every key the client saw acknowledged must be on both nodes, with the bytes it
  first read; only the killed node may have failed the client.
* Database outage for one node: node A reaches PostgreSQL through a TCP proxy that is cut and
  restored. Node A must say it is not ready, answer KMIP with a clean error (not a hang, not a
  dropped connection), stay alive, and recover by itself when the database is back.
"""

from __future__ import annotations

import json
import shutil
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from kmipd.protocol._generated import ResultStatus
from tests.support import kmip
from tests.support.postgres import fresh_database
from tests.support.server import KmipConnection, KmipdServer, free_port, init_server
from tests.support.tcp_proxy import TcpProxy

CLIENT_RUN_SECONDS = 8.0
REQUEST_TIMEOUT = 10.0
# After this long on its fallback node a client goes back to its first node (vCenter tries
# the servers of a key provider in their order), so node A's outages are met more than once.
BACK_TO_PRIMARY_AFTER = 0.5


# --- a vCenter-like client --------------------------------------------------------------------


@dataclass
class ClientStats:
    creates: int = 0
    gets: int = 0
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)
    failed_responses: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


class FailoverClient:
    """Fresh short connection per request (as vCenter 7.0.3); on a connection or TLS error the
    same request goes to the other node."""

    def __init__(
        self,
        nodes: dict[str, KmipdServer],
        primary: str,
        stats: ClientStats,
        keys: dict[str, bytes | None],
        lock: threading.Lock,
    ) -> None:
        self.nodes = nodes
        self.order = [primary] + [name for name in nodes if name != primary]
        self.current = primary
        self.since_switch = time.monotonic()
        self.stats = stats
        self.keys = keys  # acknowledged uid -> material first read (None until read)
        self.lock = lock

    def _call(self, request: bytes) -> bytes:
        attempts = 0
        while True:
            if (
                self.current != self.order[0]
                and time.monotonic() - self.since_switch > BACK_TO_PRIMARY_AFTER
            ):
                self.current = self.order[0]
            node = self.nodes[self.current]
            try:
                with node.connect(timeout=REQUEST_TIMEOUT) as connection:
                    return connection.call(request)
            except (OSError, ssl.SSLError, ConnectionError) as exc:
                attempts += 1
                with self.lock:
                    self.stats.errors[self.current] = self.stats.errors.get(self.current, 0) + 1
                    kind = f"{self.current}: {type(exc).__name__}"
                    self.stats.error_kinds[kind] = self.stats.error_kinds.get(kind, 0) + 1
                    self.stats.retries += 1
                assert attempts < 200, f"no node answered {attempts} attempts in a row"
                self.current = self.order[(self.order.index(self.current) + 1) % len(self.order)]
                self.since_switch = time.monotonic()
                time.sleep(0.02)

    def create(self) -> None:
        response = self._call(kmip.create_aes())
        result = kmip.item(response)
        if result.result_status != ResultStatus.SUCCESS:
            with self.lock:
                self.stats.failed_responses.append(f"Create: {result.result_message}")
            return
        uid = kmip.created_uid(response)
        with self.lock:
            self.stats.creates += 1
            self.keys[uid] = None

    def get(self, uid: str) -> None:
        response = self._call(kmip.get(uid))
        result = kmip.item(response)
        if result.result_status != ResultStatus.SUCCESS:
            with self.lock:
                self.stats.failed_responses.append(f"Get {uid}: {result.result_message}")
            return
        material = kmip.key_material(response)
        with self.lock:
            self.stats.gets += 1
            first = self.keys.get(uid)
            if first is None:
                self.keys[uid] = material
            elif first != material:
                self.stats.mismatches.append(uid)

    def run(self, until: float, picker: Iterator[int]) -> None:
        while time.monotonic() < until:
            self.create()
            with self.lock:
                known = list(self.keys)
            for _ in range(2):
                if known:
                    self.get(known[next(picker) % len(known)])


def _indices(seed: int) -> Iterator[int]:
    value = seed
    while True:
        value = (value * 1103515245 + 12345) % (2**31)
        yield value


def _get_material(node: KmipdServer, uid: str) -> bytes:
    return kmip.key_material(node.call(kmip.get(uid)))


def test_failover_while_a_node_is_killed_and_restarted(tmp_path: Path) -> None:
    with fresh_database("failover") as url:
        node_a = init_server(tmp_path / "data", store_url=url)
        node_b = node_a.another_node("node-b")
        node_a.start()
        node_b.start()
        try:
            nodes = {"A": node_a, "B": node_b}
            stats = ClientStats()
            keys: dict[str, bytes | None] = {}
            lock = threading.Lock()
            clients = [
                FailoverClient(nodes, primary, stats, keys, lock) for primary in ("A", "A", "B")
            ]
            until = time.monotonic() + CLIENT_RUN_SECONDS
            failures: list[BaseException] = []

            def run(client: FailoverClient, seed: int) -> None:
                try:
                    client.run(until, _indices(seed))
                except BaseException as exc:  # reported by the main thread
                    failures.append(exc)

            threads = [
                threading.Thread(target=run, args=(client, seed), daemon=True)
                for seed, client in enumerate(clients, start=1)
            ]
            for thread in threads:
                thread.start()
            kills = 0
            for at in (1.5, 4.5):
                time.sleep(max(0.0, until - CLIENT_RUN_SECONDS + at - time.monotonic()))
                node_a.kill()
                kills += 1
                time.sleep(0.5)
                node_a.start()
            for thread in threads:
                thread.join(CLIENT_RUN_SECONDS + 60)
                assert not thread.is_alive(), "a client hung"
            assert not failures, failures

            # Every acknowledged key is on both nodes with the bytes the client first read.
            for uid, first in keys.items():
                from_a = _get_material(node_a, uid)
                from_b = _get_material(node_b, uid)
                assert from_a == from_b, uid
                if first is not None:
                    assert from_a == first, uid
            unread = sum(1 for value in keys.values() if value is None)
            print(
                f"\nfailover: {kills} kills of node A; creates {stats.creates}, "
                f"gets {stats.gets}, retries {stats.retries}, errors per node "
                f"A={stats.errors.get('A', 0)} B={stats.errors.get('B', 0)} "
                f"({stats.error_kinds}); keys {len(keys)} ({unread} first read after the run)"
            )
            assert not stats.failed_responses, stats.failed_responses
            assert not stats.mismatches, stats.mismatches
            assert stats.errors.get("B", 0) == 0, stats.error_kinds
            assert stats.errors.get("A", 0) > 0, "node A's kills were never met by a client"
            assert stats.creates >= 10 and stats.gets >= 10, stats
            assert "Traceback (most recent call last)" not in node_b.log()
        finally:
            node_a.stop()
            node_b.stop()


# --- a database outage on one node ------------------------------------------------------------


def _http(url: str, ca: Path, timeout: float = 5.0) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, body.decode(errors="replace")


def _readyz(node: KmipdServer) -> tuple[int, Any]:
    return _http(f"{node.https_url}/readyz", node.ca, timeout=30.0)


def _wait_for(condition: Any, seconds: float, what: str) -> float:
    start = time.monotonic()
    last: Any = None
    while time.monotonic() - start < seconds:
        ok, last = condition()
        if ok:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {seconds} s; last seen {last!r}")


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


@dataclass
class Outage:
    """What node A did while its path to the database was cut, then restored."""

    not_ready_after: float = 0.0
    readyz_seconds: float = 0.0
    readyz_body: Any = None
    healthz: tuple[int, Any] = (0, None)
    # (what happened, seconds): a KMIP Get on a connection opened before the cut, on a new one
    get_open_connection: tuple[str, float] = ("", 0.0)
    get_new_connection: tuple[str, float] = ("", 0.0)
    alive_during: bool = False
    other_node_served: bool = False
    ready_after: float = 0.0
    recovered_get: bool = False
    recovered_cross_node: bool = False
    alive_after: bool = False
    tracebacks: dict[str, list[str]] = field(default_factory=dict)


def _kmip_get_outcome(connection: KmipConnection, uid: str) -> tuple[str, float]:
    """ "operation failed: REASON MESSAGE", "success", "dropped: ERROR" or "timeout"."""
    started = time.monotonic()
    try:
        response = connection.call(kmip.get(uid))
    except TimeoutError:
        return "timeout", time.monotonic() - started
    except (OSError, ssl.SSLError, ConnectionError) as exc:
        return f"dropped: {type(exc).__name__}: {exc}", time.monotonic() - started
    seconds = time.monotonic() - started
    result = kmip.item(response)
    if result.result_status == ResultStatus.SUCCESS:
        return "success", seconds
    if result.result_status == ResultStatus.OPERATION_FAILED:
        return f"operation failed: {result.result_reason!r} {result.result_message}", seconds
    return f"status {result.result_status!r}: {result.result_message}", seconds


def _tracebacks(log: str) -> list[str]:
    """The log line before each traceback (what failed)."""
    lines = log.splitlines()
    return [
        lines[i - 1] if i else ""
        for i, line in enumerate(lines)
        if line.startswith("Traceback (most recent call last)")
    ]


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    """One run of the scenario, observed; the tests below judge it."""
    tmp_path = Path(tmp_path_factory.mktemp("outage"))
    seen = Outage()
    with fresh_database("outage") as url:
        target = urlsplit(url)
        proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
        proxy.start()
        node_a = init_server(tmp_path / "a", store_url=url)
        # Node B: a copy of A's data directory (how a node joins a cluster), straight to the
        # database. Node A reaches the database through the proxy.
        shutil.copytree(tmp_path / "a", tmp_path / "b")
        node_b = KmipdServer(
            data_dir=tmp_path / "b",
            kmip_port=free_port(),
            https_port=free_port(),
            node_name="node-b",
        )
        node_a.configure(store={"url": _with_port(url, proxy.port)})
        node_a.start()
        node_b.start()
        try:
            uid = kmip.created_uid(node_a.call(kmip.create_aes()))
            material = _get_material(node_a, uid)
            assert _get_material(node_b, uid) == material
            status, body = _readyz(node_a)
            assert status == 200 and body["checks"]["store"] == "ok", body
            with node_a.connect(timeout=12.0) as opened:
                assert kmip.key_material(opened.call(kmip.get(uid))) == material

                proxy.stop()
                cut = time.monotonic()

                def not_ready() -> tuple[bool, Any]:
                    status, body = _readyz(node_a)
                    return status == 503 and body["checks"]["store"] != "ok", (status, body)

                seen.not_ready_after = _wait_for(not_ready, 15.0, "node A reporting not ready")
                started = time.monotonic()
                _, seen.readyz_body = _readyz(node_a)
                seen.readyz_seconds = time.monotonic() - started
                seen.healthz = _http(f"{node_a.https_url}/healthz", node_a.ca)
                seen.get_open_connection = _kmip_get_outcome(opened, uid)
            try:
                with node_a.connect(timeout=12.0) as fresh:
                    seen.get_new_connection = _kmip_get_outcome(fresh, uid)
            except (OSError, ssl.SSLError) as exc:
                seen.get_new_connection = (f"connect failed: {type(exc).__name__}", 0.0)
            seen.other_node_served = _get_material(node_b, uid) == material
            time.sleep(1.0)
            seen.alive_during = node_a.process is not None and node_a.process.poll() is None

            proxy.start()
            restored = time.monotonic()
            seen.ready_after = _wait_for(
                lambda: (lambda r: (r[0] == 200, r))(_readyz(node_a)), 15.0, "node A ready again"
            )
            seen.recovered_get = _get_material(node_a, uid) == material
            other = kmip.created_uid(node_b.call(kmip.create_aes()))
            seen.recovered_cross_node = _get_material(node_a, other) == _get_material(node_b, other)
            seen.alive_after = node_a.process is not None and node_a.process.poll() is None
            seen.tracebacks = {"A": _tracebacks(node_a.log()), "B": _tracebacks(node_b.log())}
            print(
                f"\noutage ({restored - cut:.1f} s): not ready {seen.not_ready_after:.2f} s "
                f"after the cut, a /readyz then takes {seen.readyz_seconds:.2f} s "
                f"({seen.readyz_body}); KMIP Get on an open connection: "
                f"{seen.get_open_connection[0]} in {seen.get_open_connection[1]:.2f} s; on a "
                f"new connection: {seen.get_new_connection[0]} in "
                f"{seen.get_new_connection[1]:.2f} s; ready again {seen.ready_after:.2f} s "
                f"after the restore; tracebacks in A's log: {len(seen.tracebacks['A'])} "
                f"{sorted(set(seen.tracebacks['A']))[:6]}"
            )
            yield seen
        finally:
            node_a.stop()
            node_b.stop()
            proxy.stop()


def test_database_outage_node_reports_not_ready_and_recovers(outage: Outage) -> None:
    assert outage.not_ready_after < 5.0
    assert outage.readyz_body["status"] == "not ready", outage.readyz_body
    assert outage.readyz_body["checks"]["store"].startswith("failed"), outage.readyz_body
    assert outage.healthz == (200, {"status": "ok"})
    assert outage.alive_during and outage.alive_after
    assert outage.other_node_served
    assert outage.ready_after < 5.0
    assert outage.recovered_get and outage.recovered_cross_node
    assert not outage.tracebacks["B"], outage.tracebacks["B"]


def test_database_outage_kmip_get_fails_cleanly(outage: Outage) -> None:
    """On an open connection and on a new one (the node still knows its clients without its
    database): a KMIP error in a few seconds, so vCenter moves on to the other server."""
    for what, seconds in (outage.get_open_connection, outage.get_new_connection):
        assert what.startswith("operation failed"), what
        assert seconds < 5.0, (what, seconds)


def test_database_outage_leaves_no_traceback_in_the_log(outage: Outage) -> None:
    assert not outage.tracebacks["A"], outage.tracebacks["A"]
