"""The Key Protect-compatible API over raw HTTP: envelopes, status codes and reason codes,
state rules, standard keys, AAD, roles, and crypto-shredding of the KMIP instances."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import kmip
from tests.support.keyprotect import (
    ERROR_TYPE,
    KEY_TYPE,
    KpClient,
    b64,
    create_body,
    keyprotect_server,
    reason,
)
from tests.support.server import KmipdServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    with keyprotect_server(Path(tmp_path_factory.mktemp("kp")) / "data") as running:
        yield running


def _client_with_role(server: KmipdServer, role: str) -> KpClient:
    admin = KpClient(server, server.admin_api_key)
    try:
        response = admin.http.post(
            "/admin/v1/apikeys",
            headers={"Authorization": f"Bearer {server.admin_api_key}"},
            json={"service_id": f"svc-{role.lower()}", "role": role},
        )
        assert response.status_code == 201, response.text
        return KpClient(server, response.json()["api_key"])
    finally:
        admin.close()


@pytest.fixture(scope="module")
def kp(server: KmipdServer) -> Iterator[KpClient]:
    client = KpClient(server, server.admin_api_key)
    yield client
    client.close()


@pytest.fixture(scope="module")
def reader(server: KmipdServer) -> Iterator[KpClient]:
    client = _client_with_role(server, "Reader")
    yield client
    client.close()


@pytest.fixture(scope="module")
def writer(server: KmipdServer) -> Iterator[KpClient]:
    client = _client_with_role(server, "Writer")
    yield client
    client.close()


# --- create, get, envelopes ------------------------------------------------------------------


def test_create_returns_the_full_key_in_a_key_collection(kp: KpClient) -> None:
    response = kp.request(
        "POST", "/keys", create_body("crk-a", description="d", tags=["t1"]), content_type=KEY_TYPE
    )
    assert response.status_code == 201
    assert response.headers["content-type"] == KEY_TYPE
    body = response.json()
    assert body["metadata"] == {"collectionType": KEY_TYPE, "collectionTotal": 1}
    key = body["resources"][0]
    assert key["name"] == "crk-a" and key["description"] == "d" and key["tags"] == ["t1"]
    assert key["extractable"] is False and key["state"] == 1 and key["imported"] is False
    assert key["keyVersion"]["id"] == key["id"]
    assert key["createdBy"] == "admin" and key["deleted"] is False
    assert key["crn"].endswith(f":{kp.instance}:key:{key['id']}")
    assert "payload" not in key
    again = kp.get(key["id"])
    assert again.status_code == 200 and again.json()["resources"][0]["id"] == key["id"]
    assert "payload" not in again.json()["resources"][0]


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "application/vnd.ibm.kms.key+json", "text/plain"],
)
def test_json_bodies_are_read_whatever_the_content_type(
    kp: KpClient, content_type: str | None
) -> None:
    response = kp.request("POST", "/keys", create_body("any-ct"), content_type=content_type)
    assert response.status_code == 201, response.text


def test_request_errors(kp: KpClient) -> None:
    mismatch = create_body("x-key")
    mismatch["metadata"]["collectionTotal"] = 2
    response = kp.request("POST", "/keys", mismatch)
    assert (response.status_code, reason(response)) == (400, "COLLECTION_TOTAL_MISMATCH_ERR")
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["metadata"]["collectionType"] == ERROR_TYPE
    assert body["resources"][0]["errorMsg"].startswith("Bad Request: Key could not be created")

    response = kp.request("POST", "/keys")
    assert (response.status_code, reason(response)) == (400, "NO_BODY_ERR")
    response = kp.request("POST", "/keys", b"{not json")
    assert (response.status_code, reason(response)) == (400, "BAD_BODY_ERR")
    response = kp.request("POST", "/keys", create_body("k", extractable=False))  # name too short
    assert (response.status_code, reason(response)) == (400, "INVALID_FIELD_ERR")
    response = kp.request("POST", "/keys", create_body("bad-payload", payload="***"))
    assert (response.status_code, reason(response)) == (400, "INVALID_FIELD_ERR")
    response = kp.request("POST", "/keys", create_body("bad-size", payload=b64(b"x" * 20)))
    assert (response.status_code, reason(response)) == (400, "INVALID_FIELD_ERR")
    assert response.json()["resources"][0]["reasons"][0]["target"]["name"] == "payload"

    response = kp.get("00000000-0000-4000-8000-000000000000")
    assert (response.status_code, reason(response)) == (404, "KEY_NOT_FOUND_ERR")
    assert response.json()["resources"][0]["errorMsg"].startswith("Not Found: Key could not be")

    response = kp.request("GET", "/keys", params={"state": "1,4"})
    assert (response.status_code, reason(response)) == (400, "INVALID_QUERY_PARAM_ERR")
    response = kp.request("GET", "/keys", params={"limit": 5001})
    assert (response.status_code, reason(response)) == (400, "INVALID_QUERY_PARAM_ERR")


def test_bluemix_instance_and_credentials(kp: KpClient) -> None:
    headers = kp.headers()
    del headers["Bluemix-Instance"]
    response = kp.http.get("/api/v2/keys", headers=headers)
    assert response.status_code == 400
    assert reason(response) == "BAD_REQUEST_ERR"
    response = kp.http.get(
        "/api/v2/keys", headers={**headers, "Bluemix-Instance": "0f0f0f0f-0000-4000-8000-00000000"}
    )
    assert (response.status_code, reason(response)) == (404, "INSTANCE_NOT_FOUND_ERR")
    response = kp.http.get("/api/v2/keys", headers={"Bluemix-Instance": kp.instance})
    assert (response.status_code, reason(response)) == (401, "UNAUTHORIZED_ERR")
    response = kp.http.get(
        "/api/v2/keys",
        headers={"Bluemix-Instance": kp.instance, "Authorization": "Bearer kmipd-nope"},
    )
    assert (response.status_code, reason(response)) == (401, "UNAUTHORIZED_ERR")
    # The instance GUID is compared case-insensitively.
    response = kp.http.get(
        "/api/v2/keys", headers=kp.headers(**{"Bluemix-Instance": kp.instance.upper()})
    )
    assert response.status_code == 200


# --- wrap, unwrap, rewrap, rotate, versions -----------------------------------------------


def test_wrap_unwrap_rotate_rewrap_and_versions(kp: KpClient) -> None:
    key = kp.create("crk-wrap")
    kid = key["id"]
    dek = os.urandom(32)
    wrapped = kp.action(kid, "wrap", {"plaintext": b64(dek), "aad": ["tenant-a", "disk-1"]})
    assert wrapped.status_code == 200
    assert wrapped.headers["content-type"] == "application/vnd.ibm.kms.key_action+json"
    w = wrapped.json()
    assert w["keyVersion"] == {"id": kid} and "plaintext" not in w
    assert b64(dek) not in w["ciphertext"]

    generated = kp.action(kid, "wrap", None)  # no body at all: a generated DEK
    assert generated.status_code == 200
    g = generated.json()
    assert len(base64.b64decode(g["plaintext"])) == 32
    unwrapped = kp.action(kid, "unwrap", {"ciphertext": g["ciphertext"]}).json()
    assert unwrapped["plaintext"] == g["plaintext"] and "ciphertext" not in unwrapped

    aad = ["tenant-a", "disk-1"]
    u = kp.action(kid, "unwrap", {"ciphertext": w["ciphertext"], "aad": aad}).json()
    assert base64.b64decode(u["plaintext"]) == dek and u["keyVersion"] == {"id": kid}
    for wrong in (["tenant-a"], ["tenant-a", "disk-2"], ["tenant-adisk-1"], []):
        response = kp.action(kid, "unwrap", {"ciphertext": w["ciphertext"], "aad": wrong})
        assert (response.status_code, reason(response)) == (422, "UNPROCESSABLE_CIPHERTEXT_ERR")

    assert kp.action(kid, "rotate").status_code == 204  # Content-Length 0, as IBM's SDK sends
    assert kp.action(kid, "rotate", {}).status_code == 204
    versions = kp.get(kid, "/versions").json()
    assert versions["metadata"]["collectionType"] == "application/vnd.ibm.kms.key.version+json"
    ids = [v["id"] for v in versions["resources"]]
    assert len(ids) == 3 and ids[-1] == kid  # newest first
    latest = kp.get(kid, "/metadata").json()["resources"][0]
    assert latest["keyVersion"]["id"] == ids[0] and latest["lastRotateDate"]
    counted = kp.request("GET", f"/keys/{kid}/versions", params={"totalCount": "true", "limit": 1})
    assert counted.json()["metadata"]["totalCount"] == 3
    assert len(counted.json()["resources"]) == 1

    old = kp.action(kid, "unwrap", {"ciphertext": w["ciphertext"], "aad": aad}).json()
    assert base64.b64decode(old["plaintext"]) == dek
    assert old["keyVersion"] == {"id": kid} and old["rewrappedKeyVersion"] == {"id": ids[0]}
    fresh = kp.action(kid, "unwrap", {"ciphertext": old["ciphertext"], "aad": aad}).json()
    assert base64.b64decode(fresh["plaintext"]) == dek and "rewrappedKeyVersion" not in fresh

    r = kp.action(kid, "rewrap", {"ciphertext": w["ciphertext"], "aad": aad}).json()
    assert r["keyVersion"] == {"id": kid} and r["rewrappedKeyVersion"] == {"id": ids[0]}
    assert "plaintext" not in r
    back = kp.action(kid, "unwrap", {"ciphertext": r["ciphertext"], "aad": aad}).json()
    assert base64.b64decode(back["plaintext"]) == dek


def test_ciphertext_errors(kp: KpClient) -> None:
    kid = kp.create("crk-ct")["id"]
    other = kp.create("crk-other")["id"]
    w = kp.action(kid, "wrap", {"plaintext": b64(b"k" * 32)}).json()
    response = kp.action(kid, "unwrap")
    assert (response.status_code, reason(response)) == (400, "NO_BODY_ERR")
    response = kp.action(kid, "unwrap", {"ciphertext": "!!not base64!!"})
    assert (response.status_code, reason(response)) == (400, "INVALID_FIELD_ERR")
    response = kp.action(kid, "wrap", {"plaintext": "%%%"})
    assert (response.status_code, reason(response)) == (400, "INVALID_FIELD_ERR")
    response = kp.action(kid, "wrap", {"plaintext": b64(b"k"), "aad": ["x" * 256]})
    assert (response.status_code, reason(response)) == (400, "INVALID_FIELD_ERR")
    envelope = json.loads(base64.b64decode(w["ciphertext"]))
    body = bytearray(base64.b64decode(envelope["ciphertext"]))
    body[0] ^= 1
    envelope["ciphertext"] = b64(bytes(body))
    tampered = b64(json.dumps(envelope).encode())
    for ciphertext in (tampered, b64(b"not json"), b64(b"{}")):
        response = kp.action(kid, "unwrap", {"ciphertext": ciphertext})
        assert (response.status_code, reason(response)) == (422, "UNPROCESSABLE_CIPHERTEXT_ERR")
    response = kp.action(other, "unwrap", {"ciphertext": w["ciphertext"]})  # another key's
    assert (response.status_code, reason(response)) == (422, "UNPROCESSABLE_CIPHERTEXT_ERR")


def test_imported_root_key_rotates_only_with_a_payload(kp: KpClient) -> None:
    material = os.urandom(32)
    key = kp.create("crk-imported", payload=b64(material))
    assert key["imported"] is True and "payload" not in key
    response = kp.action(key["id"], "rotate")
    assert (response.status_code, reason(response)) == (400, "KEY_PAYLOAD_REQ_ERR")
    response = kp.action(key["id"], "rotate", {"payload": b64(os.urandom(16))})
    assert response.status_code == 204
    generated = kp.create("crk-generated")
    response = kp.action(generated["id"], "rotate", {"payload": b64(os.urandom(32))})
    assert (response.status_code, reason(response)) == (400, "INVALID_FIELD_ERR")


# --- states ------------------------------------------------------------------------------


def test_disable_enable_and_state_rules(kp: KpClient) -> None:
    kid = kp.create("crk-states")["id"]
    w = kp.action(kid, "wrap", {}).json()
    response = kp.action(kid, "enable")
    assert (response.status_code, reason(response)) == (409, "KEY_ACTION_INVALID_STATE_ERR")
    assert kp.action(kid, "disable").status_code == 204
    assert kp.get(kid).json()["resources"][0]["state"] == 2
    for action, body in (
        ("wrap", {}),
        ("unwrap", {"ciphertext": w["ciphertext"]}),
        ("rewrap", {"ciphertext": w["ciphertext"]}),
        ("rotate", None),
        ("disable", None),
    ):
        response = kp.action(kid, action, body)
        assert (response.status_code, reason(response)) == (409, "KEY_ACTION_INVALID_STATE_ERR")
    assert kp.action(kid, "enable").status_code == 204
    assert kp.action(kid, "unwrap", {"ciphertext": w["ciphertext"]}).status_code == 200


def test_delete_restore_purge(kp: KpClient) -> None:
    kid = kp.create("crk-delete")["id"]
    w = kp.action(kid, "wrap", {}).json()
    response = kp.action(kid, "restore")
    assert response.status_code == 404  # not an action: restore is POST /keys/{id}/restore
    response = kp.request("POST", f"/keys/{kid}/restore")
    assert (response.status_code, reason(response)) == (409, "KEY_ACTION_INVALID_STATE_ERR")

    assert kp.request("DELETE", f"/keys/{kid}").status_code == 204
    response = kp.request("DELETE", f"/keys/{kid}")
    assert (response.status_code, reason(response)) == (410, "KEY_DELETED_ERR")
    deleted = kp.get(kid).json()["resources"][0]
    assert deleted["state"] == 5 and deleted["deleted"] is True
    assert deleted["deletedBy"] == "admin" and deleted["restoreAllowed"] is True
    assert deleted["deletionDate"] and deleted["restoreExpirationDate"]
    for action, body in (("wrap", {}), ("unwrap", {"ciphertext": w["ciphertext"]})):
        response = kp.action(kid, action, body)
        assert (response.status_code, reason(response)) == (409, "KEY_ACTION_INVALID_STATE_ERR")
    listed = kp.request("GET", "/keys").json()["resources"]
    assert kid not in [k["id"] for k in listed]
    listed = kp.request("GET", "/keys", params={"state": "5"}).json()["resources"]
    assert [k["id"] for k in listed] == [kid]

    restored = kp.request("POST", f"/keys/{kid}/restore")
    assert restored.status_code == 201
    assert restored.json()["resources"][0]["state"] == 1
    assert kp.action(kid, "unwrap", {"ciphertext": w["ciphertext"]}).status_code == 200

    response = kp.request("DELETE", f"/keys/{kid}/purge")
    assert (response.status_code, reason(response)) == (409, "KEY_ACTION_INVALID_STATE_ERR")
    represented = kp.request("DELETE", f"/keys/{kid}", headers={"Prefer": "return=representation"})
    assert represented.status_code == 200
    assert represented.json()["resources"][0]["state"] == 5
    purged = kp.request("DELETE", f"/keys/{kid}/purge")
    assert purged.status_code == 200 and purged.json()["resources"][0]["id"] == kid
    for response in (kp.get(kid), kp.request("DELETE", f"/keys/{kid}")):
        assert (response.status_code, reason(response)) == (404, "KEY_NOT_FOUND_ERR")


def test_deprecated_action_query_form(kp: KpClient) -> None:
    kid = kp.create("crk-deprecated")["id"]

    def act(name: str, body: object = None) -> httpx.Response:
        return kp.request("POST", f"/keys/{kid}", body, params={"action": name})

    w = act("wrap", {"plaintext": b64(b"d" * 16)})
    assert w.status_code == 200
    ciphertext = w.json()["ciphertext"]
    u = act("unwrap", {"ciphertext": ciphertext})
    assert base64.b64decode(u.json()["plaintext"]) == b"d" * 16
    assert act("rotate").status_code == 204
    assert act("disable").status_code == 204
    assert act("enable").status_code == 204
    assert kp.request("DELETE", f"/keys/{kid}").status_code == 204
    assert act("restore").status_code == 201
    response = act("setKeyForDeletion")
    assert (response.status_code, reason(response)) == (409, "NOT_DUAL_AUTH_ERR")
    response = act("explode")
    assert (response.status_code, reason(response)) == (400, "INVALID_QUERY_PARAM_ERR")


# --- standard keys -------------------------------------------------------------------------


def test_standard_keys(kp: KpClient, reader: KpClient) -> None:
    material = os.urandom(64)
    key = kp.create("std-imported", extractable=True, payload=b64(material))
    assert key["extractable"] is True and key["imported"] is True
    got = kp.get(key["id"]).json()["resources"][0]
    assert base64.b64decode(got["payload"]) == material
    assert "payload" not in kp.get(key["id"], "/metadata").json()["resources"][0]
    assert "payload" not in reader.get(key["id"]).json()["resources"][0]  # ReaderPlus: Writer
    for listed in kp.request("GET", "/keys", params={"extractable": "true"}).json()["resources"]:
        assert listed["extractable"] is True and "payload" not in listed
    generated = kp.create("std-generated", extractable=True)
    payload = kp.get(generated["id"]).json()["resources"][0]["payload"]
    assert len(base64.b64decode(payload)) == 32
    big = kp.request(
        "POST", "/keys", create_body("std-big", extractable=True, payload=b64(b"x" * 7501))
    )
    assert (big.status_code, reason(big)) == (400, "INVALID_FIELD_ERR")
    for action, body in (("wrap", {}), ("rotate", None), ("disable", None)):
        response = kp.action(key["id"], action, body)
        assert (response.status_code, reason(response)) == (400, "KEY_ROOT_REQ_ERR")
    response = kp.get(key["id"], "/versions")
    assert (response.status_code, reason(response)) == (400, "KEY_ROOT_REQ_ERR")
    assert kp.request("DELETE", f"/keys/{key['id']}").status_code == 204
    assert "payload" not in kp.get(key["id"]).json()["resources"][0]


# --- list, total, search, aliases -------------------------------------------------------------


def test_list_filters_paging_and_total(kp: KpClient) -> None:
    names = [f"page-{i}" for i in range(5)]
    ids = [kp.create(name)["id"] for name in names]
    everything = kp.request("GET", "/keys", params={"limit": 5000, "state": ""}).json()
    assert everything["metadata"]["collectionTotal"] == len(everything["resources"])
    head = kp.request("HEAD", "/keys", params={"state": ""})
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Key-Total"]) == len(everything["resources"])

    found = kp.request("GET", "/keys", params={"search": "page-", "sort": "name"}).json()
    assert [k["name"] for k in found["resources"]] == names
    descending = kp.request("GET", "/keys", params={"search": "page-", "sort": "-name"}).json()
    assert [k["name"] for k in descending["resources"]] == names[::-1]
    page = kp.request(
        "GET", "/keys", params={"search": "page-", "sort": "name", "limit": 2, "offset": 2}
    ).json()
    assert [k["name"] for k in page["resources"]] == names[2:4]
    exact = kp.request("GET", "/keys", params={"search": "exact:page-3"}).json()
    assert [k["id"] for k in exact["resources"]] == [ids[3]]
    by_id = kp.request("GET", "/keys", params={"search": ids[1]}).json()
    assert [k["id"] for k in by_id["resources"]] == [ids[1]]
    roots = kp.request("GET", "/keys", params={"extractable": "false", "limit": 5000}).json()
    assert all(k["extractable"] is False for k in roots["resources"])
    assert all("payload" not in k for k in roots["resources"])
    response = kp.request("GET", "/keys", params={"sort": "colour"})
    assert (response.status_code, reason(response)) == (400, "INVALID_QUERY_PARAM_ERR")


def test_aliases(kp: KpClient) -> None:
    key = kp.create("crk-alias", aliases=["first-alias"])
    assert key["aliases"] == ["first-alias"]
    assert kp.get("first-alias").json()["resources"][0]["id"] == key["id"]
    added = kp.request("POST", f"/keys/{key['id']}/aliases/second-alias")
    assert added.status_code == 201
    assert added.json()["resources"][0]["alias"] == "second-alias"
    w = kp.action("second-alias", "wrap", {}).json()
    assert kp.action(key["id"], "unwrap", {"ciphertext": w["ciphertext"]}).status_code == 200
    other = kp.create("crk-alias-2")
    response = kp.request("POST", f"/keys/{other['id']}/aliases/first-alias")
    assert (response.status_code, reason(response)) == (409, "KEY_ALIAS_NOT_UNIQUE_ERR")
    for i in range(3):
        assert kp.request("POST", f"/keys/{key['id']}/aliases/more-{i}").status_code == 201
    response = kp.request("POST", f"/keys/{key['id']}/aliases/sixth")
    assert (response.status_code, reason(response)) == (400, "KEY_ALIAS_QUOTA_ERR")
    response = kp.request("POST", f"/keys/{key['id']}/aliases/{other['id']}")
    assert (response.status_code, reason(response)) == (400, "INVALID_FIELD_ERR")
    assert kp.request("DELETE", f"/keys/{key['id']}/aliases/second-alias").status_code == 204
    response = kp.get("second-alias")
    assert (response.status_code, reason(response)) == (404, "KEY_NOT_FOUND_ERR")


# --- roles -----------------------------------------------------------------------------------


def test_roles(kp: KpClient, reader: KpClient, writer: KpClient) -> None:
    kid = kp.create("crk-roles")["id"]
    response = reader.request("POST", "/keys", create_body("by-reader"))
    assert (response.status_code, reason(response)) == (401, "UNAUTHORIZED_ERR")
    assert "Writer" in response.json()["resources"][0]["reasons"][0]["message"]
    for client, action in ((reader, "rotate"), (writer, "disable"), (reader, "disable")):
        response = client.action(kid, action)
        assert (response.status_code, reason(response)) == (401, "UNAUTHORIZED_ERR")
    for client in (reader, writer):
        response = client.request("DELETE", f"/keys/{kid}")
        assert (response.status_code, reason(response)) == (401, "UNAUTHORIZED_ERR")
        response = client.request("POST", f"/keys/{kid}", params={"action": "disable"})
        assert (response.status_code, reason(response)) == (401, "UNAUTHORIZED_ERR")
    # What each role may do.
    w = reader.action(kid, "wrap", {}).json()
    assert reader.action(kid, "unwrap", {"ciphertext": w["ciphertext"]}).status_code == 200
    assert reader.action(kid, "rewrap", {"ciphertext": w["ciphertext"]}).status_code == 200
    assert reader.get(kid).status_code == 200
    assert reader.get(kid, "/versions").status_code == 200
    assert reader.request("GET", "/keys").status_code == 200
    created = writer.create("by-writer")
    assert created["createdBy"] == "svc-writer"
    assert writer.action(created["id"], "rotate").status_code == 204
    assert kp.request("DELETE", f"/keys/{created['id']}").status_code == 204
    assert kp.get(created["id"]).json()["resources"][0]["deletedBy"] == "admin"


# --- crypto-shredding of the KMIP instances --------------------------------------------------


def _root_key_of_default(server: KmipdServer) -> str:
    instances = server.with_store(lambda store: store.instances())
    (default,) = [i for i in instances if i.name == "default"]
    return str(default.root_key_id)


def test_disabling_or_deleting_the_root_key_stops_its_kmip_instance(
    server: KmipdServer, kp: KpClient
) -> None:
    root = _root_key_of_default(server)
    assert kp.get(root).json()["resources"][0]["extractable"] is False
    uid = kmip.created_uid(server.call(kmip.create_aes()))
    material = kmip.key_material(server.call(kmip.get(uid)))

    assert kp.action(root, "disable").status_code == 204
    refused = kmip.item(server.call(kmip.get(uid)))
    assert refused.result_status != kmip.ResultStatus.SUCCESS
    assert kmip.item(server.call(kmip.create_aes())).result_status != kmip.ResultStatus.SUCCESS
    assert kp.action(root, "enable").status_code == 204
    assert kmip.key_material(server.call(kmip.get(uid))) == material

    assert kp.request("DELETE", f"/keys/{root}").status_code == 204
    refused = kmip.item(server.call(kmip.get(uid)))
    assert refused.result_status != kmip.ResultStatus.SUCCESS
    assert material.hex() not in server.log() and b64(material) not in server.log()

    assert kp.request("POST", f"/keys/{root}/restore").status_code == 201
    assert kmip.key_material(server.call(kmip.get(uid))) == material
