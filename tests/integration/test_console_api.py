"""The API routes the web console relies on, on a real server over HTTPS: who am I
(``/admin/v1/session``), keys not fetched for N days (``stale-keys``) and the node's KMIP
endpoints and health (``/admin/v1/nodes``); and the console's files under ``/ui``."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kmipd import __version__
from tests.support import kmip
from tests.support.admin import bearer, https_client, write_pair
from tests.support.server import KmipdServer

A = "/admin/v1"
DAY = 86400


@pytest.fixture(scope="module")
def http(shared_server: KmipdServer) -> Iterator[httpx.Client]:
    with https_client(shared_server) as client:
        client.headers.update(bearer(shared_server.admin_api_key))
        yield client


def api_key(http: httpx.Client, service_id: str, role: str) -> str:
    reply = http.post(f"{A}/apikeys", json={"service_id": service_id, "role": role})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["api_key"])


def test_session_names_the_caller_and_role(
    http: httpx.Client, shared_server: KmipdServer
) -> None:
    reader = api_key(http, "console-reader", "Reader")
    with https_client(shared_server) as anonymous:
        assert anonymous.get(f"{A}/session").status_code == 401
        token = anonymous.post(
            "/identity/token",
            data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": reader},
        ).json()["access_token"]
        me = anonymous.get(f"{A}/session", headers=bearer(token))
    assert me.status_code == 200, me.text
    body = me.json()
    assert (body["service_id"], body["role"]) == ("console-reader", "Reader")
    guid = (shared_server.data_dir / "keyprotect-instance-id").read_text().strip()
    assert body["keyprotect_instance_id"] == guid
    assert reader not in me.text and token not in me.text
    admin = http.get(f"{A}/session").json()
    assert admin["role"] == "Manager"


def _age(server: KmipdServer, uid: str, column: str, seconds_ago: int | None) -> None:
    """Make a key look older than it is: set its creation or last fetch time in the database
    (days cannot pass in a test)."""
    assert column in ("created", "last_fetched")
    value = None if seconds_ago is None else int(time.time()) - seconds_ago
    with sqlite3.connect(server.database, timeout=10) as db:
        changed = db.execute(f"UPDATE objects SET {column} = ? WHERE uid = ?", (value, uid))
        assert changed.rowcount == 1


def test_stale_keys_lists_keys_not_fetched_for_n_days(
    http: httpx.Client, shared_server: KmipdServer, tmp_path: Path
) -> None:
    assert http.post(f"{A}/instances", json={"name": "stale"}).status_code == 201
    issued = http.post(f"{A}/instances/stale/certificates/issue", json={"common_name": "vc"})
    credentials = write_pair(
        tmp_path, "vc", issued.json()["certificate"]["pem"], issued.json()["private_key_pem"]
    )
    context = shared_server.tls_context(certificate=credentials)
    with shared_server.connect(context=context) as connection:
        uids = [kmip.created_uid(connection.call(kmip.create_aes())) for _ in range(4)]
        fetched_long_ago, never_fetched_old, fresh, destroyed = uids
        for uid in (fetched_long_ago, fresh, destroyed):
            connection.call(kmip.get(uid))
    _age(shared_server, fetched_long_ago, "last_fetched", 40 * DAY)
    _age(shared_server, fetched_long_ago, "created", 400 * DAY)
    _age(shared_server, never_fetched_old, "created", 45 * DAY)
    _age(shared_server, destroyed, "last_fetched", 60 * DAY)
    assert http.delete(f"{A}/instances/stale/keys/{destroyed}").status_code == 200
    now = int(time.time())

    reply = http.get(f"{A}/instances/stale/stale-keys", params={"days": 30})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    # Never fetched and 45 days old sorts before last fetched 40 days ago.
    assert [k["uid"] for k in body["keys"]] == [never_fetched_old, fetched_long_ago]
    assert body["total"] == 2 and body["days"] == 30
    assert now - 30 * DAY - 5 <= body["cutoff"] <= int(time.time()) - 30 * DAY
    assert fresh not in {k["uid"] for k in body["keys"]}

    older = http.get(f"{A}/instances/stale/stale-keys?days=42").json()
    assert [k["uid"] for k in older["keys"]] == [never_fetched_old]
    assert http.get(f"{A}/instances/stale/stale-keys?days=50").json()["total"] == 0

    bad = http.get(f"{A}/instances/stale/stale-keys?days=-1")
    assert bad.status_code == 400 and "days" in bad.json()["error"]["message"]
    missing = http.get(f"{A}/instances/no-such/stale-keys")
    assert missing.status_code == 404, missing.text


def test_nodes_lists_kmip_endpoints_and_health(
    http: httpx.Client, shared_server: KmipdServer
) -> None:
    reply = http.get(f"{A}/nodes")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    # One node registered in the database: this one.
    assert body["discovery"] == "registry"
    [node] = body["nodes"]
    port = shared_server.kmip_port
    assert (node["id"], node["this"]) == (f"{socket.gethostname()}:{port}", True)
    assert node["kmip_port"] == port and node["https_port"] == shared_server.https_port
    assert (node["state"], node["version"]) == ("ready", __version__)
    assert node["started"] <= node["last_seen"] <= time.time() + 1
    # The server certificate's names from `kmipd init`, non-loopback ones first.
    loopback = [f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"]
    assert node["kmip_endpoints"][-3:] == loopback
    assert node["ready"] is True
    assert node["checks"] == {"store": "ok", "root_key_provider": "ok"}
    # One of these endpoints really serves KMIP.
    host, _, listed_port = node["kmip_endpoints"][-2].rpartition(":")
    assert (host, int(listed_port)) == ("127.0.0.1", port)
    assert kmip.created_uid(shared_server.call(kmip.create_aes()))


def test_console_files_are_served_with_a_strict_policy(shared_server: KmipdServer) -> None:
    with https_client(shared_server) as client:
        assert client.get("/ui").status_code in (301, 307)
        page = client.get("/ui/")
        script = client.get("/ui/console.js")
        missing = client.get("/ui/nothing-here.js")
    assert page.status_code == 200 and 'src="console.js"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    # No asset comes from elsewhere: the console works without internet.
    for text in (page.text, script.text):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
    assert missing.status_code == 404
