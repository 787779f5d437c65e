"""An instance whose root key is in a remote Key Protect (a second kmipd process).

kmipd A is configured with ``[root_key_providers.remote] kind = "keyprotect"`` pointing at
kmipd B's Key Protect-compatible API. An instance on A bound to a root key in B serves KMIP;
deleting that root key directly on B stops the instance within A's (shortened) periodic check
interval, while A's other instances keep working. A refuses to start when a provider that an
instance uses is unreachable or not configured, saying what to fix.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kmipd import config
from kmipd.protocol._generated import ResultReason, ResultStatus
from tests.support import kmip
from tests.support.admin import bearer, https_client, write_pair
from tests.support.keyprotect import (
    KpClient,
    instance_id,
    keyprotect_server,
    new_api_key,
)
from tests.support.server import KmipdServer, init_server

CHECK_INTERVAL = 0.5


def _set_providers(server: KmipdServer, *providers: config.ProviderSettings) -> None:
    settings = config.load(server.data_dir)
    settings = dataclasses.replace(
        settings,
        root_key_providers=providers,
        root_keys=config.RootKeysSettings(check_interval=CHECK_INTERVAL),
    )
    (server.data_dir / config.CONFIG_FILE).write_text(config.render(settings), encoding="utf-8")


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    with keyprotect_server(tmp_path_factory.mktemp("kp-remote")) as server:
        yield server


@pytest.fixture(scope="module")
def manager_key(remote: KmipdServer) -> str:
    return new_api_key(remote, "Manager", "kmipd-a")


def _remote_provider(remote: KmipdServer, api_key: str) -> config.ProviderSettings:
    return config.ProviderSettings(
        "remote",
        "keyprotect",
        {
            "url": remote.https_url,
            "instance_id": instance_id(remote),
            "api_key": api_key,
            "ca": str(remote.ca),
            "timeout": 5.0,
        },
    )


@pytest.fixture(scope="module")
def local(
    tmp_path_factory: pytest.TempPathFactory, remote: KmipdServer, manager_key: str
) -> Iterator[KmipdServer]:
    server = init_server(tmp_path_factory.mktemp("kmipd-a"))
    _set_providers(server, _remote_provider(remote, manager_key))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _instance_with_client(http: httpx.Client, tmp: Path, name: str, **body: str) -> tuple:
    reply = http.post("/admin/v1/instances", json={"name": name, **body})
    assert reply.status_code == 201, reply.text
    created = reply.json()
    issued = http.post(
        f"/admin/v1/instances/{name}/certificates/issue", json={"common_name": f"{name} client"}
    )
    assert issued.status_code == 201, issued.text
    issued_body = issued.json()
    creds = write_pair(tmp, name, issued_body["certificate"]["pem"], issued_body["private_key_pem"])
    return created, creds


def _get(
    server: KmipdServer, creds: tuple[Path, Path], uid: str
) -> kmip.messages.ResponseBatchItem:
    with server.connect(context=server.tls_context(certificate=creds)) as connection:
        return kmip.item(connection.call(kmip.get(uid)))


def test_remote_root_key_serves_then_stops_within_the_check_interval(
    local: KmipdServer, remote: KmipdServer, manager_key: str, tmp_path: Path
) -> None:
    with https_client(local) as http:
        http.headers.update(bearer(local.admin_api_key))
        created, creds = _instance_with_client(http, tmp_path, "remote-a", provider="remote")
        _, other_creds = _instance_with_client(http, tmp_path, "remote-b", provider="remote")
        builtin, builtin_creds = _instance_with_client(http, tmp_path, "local-c")
    assert created["provider"] == "remote" and created["root_key_created"] is True
    assert builtin["provider"] == "builtin"
    root_key = created["root_key_id"]

    kp = KpClient(remote, manager_key)
    try:
        assert kp.get(root_key, "/metadata").status_code == 200  # the key lives in B
        uids = {}
        for name, c in (("a", creds), ("b", other_creds), ("c", builtin_creds)):
            with local.connect(context=local.tls_context(certificate=c)) as connection:
                uid = kmip.created_uid(connection.call(kmip.create_aes()))
                assert len(kmip.key_material(connection.call(kmip.get(uid)))) == 32
                uids[name] = uid

        # Delete instance A's root key directly on B, not through kmipd A.
        deleted = kp.request("DELETE", f"/keys/{root_key}")
        assert deleted.status_code in (200, 204), deleted.text
        started = time.monotonic()
        while True:
            result = _get(local, creds, uids["a"])
            if result.result_status != ResultStatus.SUCCESS:
                break
            assert time.monotonic() - started < CHECK_INTERVAL + 5.0, "still served"
            time.sleep(0.1)
        assert result.result_reason == ResultReason.CRYPTOGRAPHIC_FAILURE
        # Still refused later, and the other instances keep working.
        time.sleep(CHECK_INTERVAL * 2)
        assert _get(local, creds, uids["a"]).result_status != ResultStatus.SUCCESS
        for name, c in (("b", other_creds), ("c", builtin_creds)):
            assert _get(local, c, uids[name]).result_status == ResultStatus.SUCCESS
    finally:
        kp.close()


def test_unknown_provider_is_refused_by_the_admin_api(local: KmipdServer) -> None:
    with https_client(local) as http:
        reply = http.post(
            "/admin/v1/instances",
            json={"name": "nowhere", "provider": "nope"},
            headers=bearer(local.admin_api_key),
        )
    assert reply.status_code == 400, reply.text
    assert "nope" in reply.text


def test_serve_refuses_an_unreachable_or_missing_provider(
    tmp_path: Path, remote: KmipdServer, manager_key: str
) -> None:
    server = init_server(tmp_path / "kmipd")
    _set_providers(server, _remote_provider(remote, manager_key))
    server.start()
    try:
        with https_client(server) as http:
            http.headers.update(bearer(server.admin_api_key))
            _instance_with_client(http, tmp_path, "uses-remote", provider="remote")
    finally:
        server.stop()
    # The provider's credential is wrong: start-up fails and says what to fix.
    _set_providers(server, _remote_provider(remote, "not-a-valid-api-key"))
    with pytest.raises(RuntimeError) as failure:
        server.start()
    server.process = None
    assert "root_key_providers.remote" in str(failure.value)
    assert "not-a-valid-api-key" not in str(failure.value)
    # The provider is no longer configured at all.
    _set_providers(server)
    with pytest.raises(RuntimeError) as failure:
        server.start()
    server.process = None
    assert "[root_key_providers.remote]" in str(failure.value)


def test_rotating_an_instance_whose_root_key_is_remote(
    local: KmipdServer, remote: KmipdServer, manager_key: str, tmp_path: Path
) -> None:
    """The rotate action rotates the root key in the remote service, makes a new wrapping key
    version under it, and the re-wrap job moves every object; the keys keep their bytes."""
    with https_client(local) as http:
        http.headers.update(bearer(local.admin_api_key))
        created, creds = _instance_with_client(http, tmp_path, "remote-rot", provider="remote")
        keys = {}
        with local.connect(context=local.tls_context(certificate=creds)) as connection:
            for _ in range(20):
                uid = kmip.created_uid(connection.call(kmip.create_aes()))
                keys[uid] = kmip.key_material(connection.call(kmip.get(uid)))

        kp = KpClient(remote, manager_key)
        try:
            before = kp.get(created["root_key_id"], "/versions").json()["resources"]
            reply = http.post("/admin/v1/instances/remote-rot/rotate")
            assert reply.status_code == 200, reply.text
            after = kp.get(created["root_key_id"], "/versions").json()["resources"]
        finally:
            kp.close()
        assert len(after) == len(before) + 1  # rotated in the remote service
        assert reply.json()["wrapping_key_version"] == 2

        deadline = time.monotonic() + 30
        while True:
            job = http.get("/admin/v1/instances/remote-rot/rewrap").json()
            if job["state"] == "done" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert job["state"] == "done", job
    assert job["rewrapped"] == len(keys)
    with local.connect(context=local.tls_context(certificate=creds)) as connection:
        for uid, material in keys.items():
            assert kmip.key_material(connection.call(kmip.get(uid))) == material
