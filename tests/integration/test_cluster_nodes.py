"""The node registry on a real cluster: two ``kmipd serve`` nodes on one PostgreSQL database.

``GET /admin/v1/nodes`` on either node lists both nodes with the KMIP endpoints to enter in
vCenter (and each listed endpoint serves KMIP); a node stopped cleanly (SIGTERM) is gone from
the list at once; a node killed (SIGKILL) stays listed and turns "unreachable" after 3 of its
heartbeats, and is ready again, in the same row, when it restarts; a node cut off from the
database turns unreachable in the other's list, keeps running, and is ready again there once
the database is back.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from kmipd import __version__
from tests.integration.test_cluster_failover import _with_port
from tests.support import kmip
from tests.support.admin import bearer, https_client
from tests.support.postgres import fresh_database
from tests.support.server import KmipdServer, free_port, init_server
from tests.support.tcp_proxy import TcpProxy

HEARTBEAT = 0.5  # store.node_heartbeat_seconds of both nodes
NODES = "/admin/v1/nodes"


@dataclass
class Cluster:
    a: KmipdServer
    b: KmipdServer

    def nodes(self, node: KmipdServer) -> dict[str, Any]:
        with https_client(node) as client:
            reply = client.get(NODES, headers=bearer(node.admin_api_key))
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def logs(self) -> str:
        return f"\n--- node A ---\n{self.a.log()}\n--- node B ---\n{self.b.log()}"


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with fresh_database(request.node.name) as url:
        a = init_server(tmp_path / "data", store_url=url)
        a.node_name = "node-a"
        a.configure(store={"node_heartbeat_seconds": HEARTBEAT})
        b = a.another_node("node-b")
        try:
            a.start()
            b.start()
            yield Cluster(a, b)
            assert "Traceback" not in a.log() + b.log(), Cluster(a, b).logs()
        finally:
            a.stop()
            b.stop()


def node_id(server: KmipdServer) -> str:
    return f"{socket.gethostname()}:{server.kmip_port}"


def wait_for(
    check: Callable[[], dict[str, Any] | None], timeout: float, what: str, logs: Callable[[], str]
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}{logs()}")
        time.sleep(0.05)


def listed(cluster: Cluster, asked: KmipdServer, count: int) -> dict[str, Any] | None:
    body = cluster.nodes(asked)
    return body if len(body["nodes"]) == count else None


def entry_in(
    cluster: Cluster, asked: KmipdServer, listed_node: KmipdServer, state: str
) -> dict[str, Any] | None:
    """``listed_node``'s entry in ``asked``'s list, if it is in ``state``."""
    body = cluster.nodes(asked)
    [entry] = [n for n in body["nodes"] if n["id"] == node_id(listed_node)]
    return dict(entry) if entry["state"] == state else None


def test_each_node_lists_both_nodes_and_their_kmip_endpoints(cluster: Cluster) -> None:
    for asked, other in ((cluster.a, cluster.b), (cluster.b, cluster.a)):
        body = wait_for(
            lambda asked=asked: listed(cluster, asked, 2),  # type: ignore[misc]
            5 * HEARTBEAT,
            "both nodes registered",
            cluster.logs,
        )
        assert body["discovery"] == "registry"
        this, that = body["nodes"]  # the node asked comes first
        assert (this["id"], this["this"]) == (node_id(asked), True)
        assert (that["id"], that["this"]) == (node_id(other), False)
        for entry, server in ((this, asked), (that, other)):
            port = server.kmip_port
            assert entry["kmip_port"] == port and entry["https_port"] == server.https_port
            assert entry["name"] == socket.gethostname()
            assert entry["kmip_endpoints"][0] == f"{socket.gethostname()}:{port}"
            assert f"127.0.0.1:{port}" in entry["kmip_endpoints"]
            assert (entry["state"], entry["ready"]) == ("ready", True), entry
            assert entry["checks"] == {"store": "ok", "root_key_provider": "ok"}
            assert entry["version"] == __version__
            assert time.time() - 3 * HEARTBEAT - 1 <= entry["last_seen"] <= time.time() + 1
    # The endpoints listed for the other node are where it serves KMIP.
    [b_entry] = [n for n in cluster.nodes(cluster.a)["nodes"] if not n["this"]]
    host, _, port = b_entry["kmip_endpoints"][-2].rpartition(":")  # 127.0.0.1:PORT
    assert (host, int(port)) == ("127.0.0.1", cluster.b.kmip_port)
    uid = kmip.created_uid(cluster.b.call(kmip.create_aes()))
    assert kmip.key_material(cluster.a.call(kmip.get(uid)))
    assert "node registry" not in cluster.a.log() + cluster.b.log(), cluster.logs()


def test_a_node_stopped_cleanly_leaves_the_list_at_once(cluster: Cluster) -> None:
    wait_for(lambda: listed(cluster, cluster.a, 2), 5 * HEARTBEAT, "B registered", cluster.logs)
    cluster.b.stop()  # SIGTERM: B deletes its row before it exits
    [only] = cluster.nodes(cluster.a)["nodes"]
    assert only["id"] == node_id(cluster.a) and only["this"] is True
    assert "node registry" not in cluster.b.log(), cluster.logs()


def test_a_killed_node_turns_unreachable_then_comes_back(cluster: Cluster) -> None:
    wait_for(lambda: listed(cluster, cluster.a, 2), 5 * HEARTBEAT, "B registered", cluster.logs)
    cluster.b.kill()  # SIGKILL: its row stays
    killed_at = time.time()

    entry = wait_for(
        lambda: entry_in(cluster, cluster.a, cluster.b, "unreachable"),
        3 * HEARTBEAT + 3,
        "B shown unreachable",
        cluster.logs,
    )
    assert time.time() - killed_at >= 3 * HEARTBEAT - (HEARTBEAT + 0.1)  # not before its time
    assert entry["ready"] is False and entry["last_seen"] <= killed_at + 0.5
    assert entry["kmip_endpoints"][0] == f"{socket.gethostname()}:{cluster.b.kmip_port}"
    # A's own health is not affected.
    [a_entry] = [n for n in cluster.nodes(cluster.a)["nodes"] if n["this"]]
    assert a_entry["state"] == "ready"

    cluster.b.start()  # the same host and port: the same row, ready again
    wait_for(
        lambda: entry_in(cluster, cluster.a, cluster.b, "ready"),
        5 * HEARTBEAT,
        "B ready again",
        cluster.logs,
    )
    assert len(cluster.nodes(cluster.a)["nodes"]) == 2


def test_a_node_cut_off_from_the_database_turns_unreachable_and_recovers(
    tmp_path: Path,
) -> None:
    with fresh_database("nodes_outage") as url:
        target = urlsplit(url)
        proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
        proxy.start()
        a = init_server(tmp_path / "a", store_url=url)
        a.configure(store={"node_heartbeat_seconds": HEARTBEAT})
        # Node B: a copy of A's data directory (how a node joins a cluster), reaching the
        # database through the proxy.
        shutil.copytree(tmp_path / "a", tmp_path / "b")
        b = KmipdServer(
            data_dir=tmp_path / "b", kmip_port=free_port(), https_port=free_port(), node_name="b"
        )
        b.configure(store={"url": _with_port(url, proxy.port)})
        cluster = Cluster(a, b)
        try:
            a.start()
            b.start()
            wait_for(lambda: listed(cluster, a, 2), 5 * HEARTBEAT, "B registered", cluster.logs)

            proxy.stop()
            wait_for(
                lambda: entry_in(cluster, a, b, "unreachable"),
                3 * HEARTBEAT + 10,
                "B shown unreachable while cut off",
                cluster.logs,
            )
            assert b.process is not None and b.process.poll() is None, cluster.logs()

            proxy.start()
            wait_for(
                lambda: entry_in(cluster, a, b, "ready"),
                20,
                "B ready again once the database is back",
                cluster.logs,
            )
            back = wait_for(lambda: listed(cluster, b, 2), 20, "B lists both", cluster.logs)
            assert back["discovery"] == "registry"
            assert "Traceback" not in a.log() + b.log(), cluster.logs()
        finally:
            a.stop()
            b.stop()
            proxy.stop()


def test_a_heartbeat_of_zero_is_refused(tmp_path: Path) -> None:
    server = init_server(tmp_path / "data")
    server.configure(store={"node_heartbeat_seconds": 0.0})
    with pytest.raises(RuntimeError, match=r"store\.node_heartbeat_seconds must be more than 0"):
        server.start()
    server.stop()
