"""IBM's own Key Protect client (PyPI ``keyprotect`` 3.x, unmodified) against a real kmipd.

The client gets an IAM token from kmipd's ``/identity/token`` with an API key, then drives
a root key through its life: create, wrap, unwrap, rotate, unwrap an old ciphertext,
rewrap, versions, list, key total, disable/enable, delete, restore, purge. It runs twice:
with Key Protect's vendor content types (``get_result()`` is then the raw response, read
with ``.json()``, as IBM's own tests do) and with ``application/json`` (a dict).
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from ibm_cloud_sdk_core import ApiException, DetailedResponse
from ibm_cloud_sdk_core.authenticators import IAMAuthenticator
from keyprotect import IbmKeyProtectApiV2

from tests.support.keyprotect import KEY_TYPE, instance_id, keyprotect_server
from tests.support.server import KmipdServer


@pytest.fixture(scope="module", params=[False, True], ids=["vendor-types", "application-json"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KmipdServer]:
    data_dir = Path(tmp_path_factory.mktemp("kp-sdk")) / "data"
    with keyprotect_server(data_dir, json_content_type=request.param) as running:
        running.json_content_type = request.param  # type: ignore[attr-defined]
        yield running


@pytest.fixture(scope="module")
def kp(server: KmipdServer) -> Iterator[IbmKeyProtectApiV2]:
    client = IbmKeyProtectApiV2(
        authenticator=IAMAuthenticator(server.admin_api_key, url=server.https_url)
    )
    client.set_service_url(server.https_url)
    client.set_http_config({"verify": str(server.ca), "timeout": 30})
    yield client
    # An idle keep-alive TLS connection would hold the server's shutdown until its TLS
    # close times out.
    client.get_http_client().close()


def body(server: KmipdServer, response: DetailedResponse) -> dict[str, Any]:
    """The parsed result: a dict for application/json, else the raw response's JSON."""
    result = response.get_result()
    if server.json_content_type:  # type: ignore[attr-defined]
        assert isinstance(result, dict)
        return result
    assert isinstance(result, requests.Response)
    assert result.headers["Content-Type"].startswith("application/vnd.ibm.kms.")
    parsed: dict[str, Any] = result.json()
    return parsed


def js(document: dict[str, Any]) -> io.BytesIO:
    return io.BytesIO(json.dumps(document).encode())


def create(kp: IbmKeyProtectApiV2, instance: str, name: str, **fields: Any) -> DetailedResponse:
    resource = {"type": KEY_TYPE, "name": name, "extractable": False, **fields}
    return kp.create_key(
        instance,
        js(
            {
                "metadata": {"collectionType": KEY_TYPE, "collectionTotal": 1},
                "resources": [resource],
            }
        ),
        prefer="return=representation",
    )


def test_root_key_life_cycle(server: KmipdServer, kp: IbmKeyProtectApiV2) -> None:
    instance = instance_id(server)
    created = create(kp, instance, "kmip-crk")
    assert created.get_status_code() == 201
    crk = body(server, created)["resources"][0]
    kid = crk["id"]
    assert crk["extractable"] is False and crk["state"] == 1

    wrapped = body(server, kp.wrap_key(kid, instance, key_action_wrap_body=js({"aad": ["t-a"]})))
    dek, wdek = wrapped["plaintext"], wrapped["ciphertext"]
    assert len(base64.b64decode(dek)) == 32 and wrapped["keyVersion"]["id"] == kid
    mine = base64.b64encode(os.urandom(32)).decode()
    wrapped_mine = body(
        server, kp.wrap_key(kid, instance, key_action_wrap_body=js({"plaintext": mine}))
    )
    assert "plaintext" not in wrapped_mine

    unwrapped = body(server, kp.unwrap_key(kid, instance, js({"ciphertext": wdek, "aad": ["t-a"]})))
    assert unwrapped["plaintext"] == dek

    rotated = kp.rotate_key(kid, instance)  # no body: Content-Length 0
    assert rotated.get_status_code() == 204 and rotated.get_result() is None

    old = body(server, kp.unwrap_key(kid, instance, js({"ciphertext": wdek, "aad": ["t-a"]})))
    assert old["plaintext"] == dek and "rewrappedKeyVersion" in old
    latest = old["rewrappedKeyVersion"]["id"]
    assert latest != kid
    again = body(
        server, kp.unwrap_key(kid, instance, js({"ciphertext": wrapped_mine["ciphertext"]}))
    )
    assert again["plaintext"] == mine

    rewrapped = body(server, kp.rewrap_key(kid, instance, js({"ciphertext": wdek, "aad": ["t-a"]})))
    assert rewrapped["keyVersion"]["id"] == kid
    assert rewrapped["rewrappedKeyVersion"]["id"] == latest
    fresh = body(
        server,
        kp.unwrap_key(kid, instance, js({"ciphertext": rewrapped["ciphertext"], "aad": ["t-a"]})),
    )
    assert fresh["plaintext"] == dek

    versions = body(server, kp.get_key_versions(kid, instance, total_count=True))
    assert [v["id"] for v in versions["resources"]] == [latest, kid]
    assert versions["metadata"]["totalCount"] == 2

    listed = body(server, kp.get_keys(instance, limit=50, offset=0))  # sends state=
    assert kid in [k["id"] for k in listed["resources"]]
    roots = body(server, kp.get_keys(instance, extractable=False, state=[1, 2]))
    assert all(not k["extractable"] for k in roots["resources"])
    total = kp.get_key_collection_metadata(instance)
    assert total.get_status_code() == 200 and total.get_result() is None
    assert int(total.get_headers()["Key-Total"]) == len(listed["resources"])

    assert kp.disable_key(kid, instance).get_status_code() == 204
    assert body(server, kp.get_key_metadata(kid, instance))["resources"][0]["state"] == 2
    with pytest.raises(ApiException) as refused:
        kp.wrap_key(kid, instance, key_action_wrap_body=js({}))
    assert refused.value.status_code == 409
    reasons = refused.value.http_response.json()["resources"][0]["reasons"]
    assert reasons[0]["code"] == "KEY_ACTION_INVALID_STATE_ERR"
    assert kp.enable_key(kid, instance).get_status_code() == 204

    deleted = kp.delete_key(kid, instance, prefer="return=representation")
    assert deleted.get_status_code() == 200
    assert body(server, deleted)["resources"][0]["state"] == 5
    with pytest.raises(ApiException) as gone:
        kp.delete_key(kid, instance)
    assert gone.value.status_code == 410
    with pytest.raises(ApiException) as refused:
        kp.unwrap_key(kid, instance, js({"ciphertext": wdek, "aad": ["t-a"]}))
    assert refused.value.status_code == 409

    restored = kp.restore_key(kid, instance)
    assert restored.get_status_code() == 201
    assert body(server, restored)["resources"][0]["state"] == 1
    back = body(server, kp.unwrap_key(kid, instance, js({"ciphertext": wdek, "aad": ["t-a"]})))
    assert back["plaintext"] == dek

    assert kp.delete_key(kid, instance).get_status_code() == 204
    purged = kp.purge_key(kid, instance)
    assert purged.get_status_code() == 200
    with pytest.raises(ApiException) as missing:
        kp.get_key(kid, instance)
    assert missing.value.status_code == 404
    assert missing.value.http_response.json()["resources"][0]["reasons"][0]["code"] == (
        "KEY_NOT_FOUND_ERR"
    )


def test_imported_and_standard_keys_aliases_and_deprecated_actions(
    server: KmipdServer, kp: IbmKeyProtectApiV2
) -> None:
    instance = instance_id(server)
    material = base64.b64encode(os.urandom(32)).decode()
    imported = body(server, create(kp, instance, "imported-crk", payload=material))["resources"][0]
    assert imported["imported"] is True and "payload" not in imported
    with pytest.raises(ApiException) as refused:
        kp.rotate_key(imported["id"], instance)
    assert refused.value.status_code == 400
    new_material = base64.b64encode(os.urandom(32)).decode()
    rotated = kp.rotate_key(
        imported["id"], instance, key_action_rotate_body=js({"payload": new_material})
    )
    assert rotated.get_status_code() == 204

    secret = base64.b64encode(b"a standard key's secret").decode()
    standard = body(server, create(kp, instance, "std-key", extractable=True, payload=secret))[
        "resources"
    ][0]
    assert body(server, kp.get_key(standard["id"], instance))["resources"][0]["payload"] == secret
    metadata = body(server, kp.get_key_metadata(standard["id"], instance))["resources"][0]
    assert "payload" not in metadata

    alias = body(server, kp.create_key_alias(imported["id"], "crk-alias", instance))
    assert alias["resources"][0]["alias"] == "crk-alias"
    by_alias = body(server, kp.get_key("crk-alias", instance))["resources"][0]
    assert by_alias["id"] == imported["id"]

    wrapped = body(
        server,
        kp.action_on_key(imported["id"], instance, "wrap", js({"aad": ["x"]})),
    )
    unwrapped = body(
        server,
        kp.action_on_key(
            "crk-alias", instance, "unwrap", js({"ciphertext": wrapped["ciphertext"], "aad": ["x"]})
        ),
    )
    assert unwrapped["plaintext"] == wrapped["plaintext"]
    disabled = kp.action_on_key(imported["id"], instance, "disable", js({}))
    assert disabled.get_status_code() == 204
    assert kp.action_on_key(imported["id"], instance, "enable", js({})).get_status_code() == 204
    assert kp.delete_key_alias(imported["id"], "crk-alias", instance).get_status_code() == 204
