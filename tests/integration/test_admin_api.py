"""The management API /admin/v1 on a real server over HTTPS: instances, allowed certificates,
key inventory, audit trail, CA download, and who may call what."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kmipd.keys.keyring import Keyring
from tests.support import kmip
from tests.support.admin import bearer, https_client, kmip_refused, kmip_works, write_pair
from tests.support.server import KmipdServer
from tests.support.vcenter import VCenterSession

A = "/admin/v1"


@pytest.fixture(scope="module")
def http(shared_server: KmipdServer) -> Iterator[httpx.Client]:
    with https_client(shared_server) as client:
        client.headers.update(bearer(shared_server.admin_api_key))
        yield client


@pytest.fixture(scope="module")
def role_keys(http: httpx.Client) -> dict[str, str]:
    keys = {}
    for role in ("Reader", "Writer", "Manager"):
        reply = http.post(f"{A}/apikeys", json={"service_id": f"roles-{role}", "role": role})
        assert reply.status_code == 201, reply.text
        keys[role] = reply.json()["api_key"]
    return keys


def new_instance(http: httpx.Client, name: str, **body: str) -> dict:
    reply = http.post(f"{A}/instances", json={"name": name, **body})
    assert reply.status_code == 201, reply.text
    return reply.json()


def issue(http: httpx.Client, instance: str, cn: str = "vcenter") -> dict:
    reply = http.post(f"{A}/instances/{instance}/certificates/issue", json={"common_name": cn})
    assert reply.status_code == 201, reply.text
    return reply.json()


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def error(reply: httpx.Response, status: int) -> dict[str, str]:
    assert reply.status_code == status, reply.text
    body = reply.json()["error"]
    assert "Traceback" not in body["message"] and "SELECT" not in body["message"]
    return body


# -- instances -------------------------------------------------------------------------------


def test_instance_create_list_show_delete(http: httpx.Client, shared_server: KmipdServer) -> None:
    made = new_instance(http, "inst-a")
    assert made["root_key_created"] is True
    assert made["certificates"] == 0 and made["keys"] == 0
    assert made["root_key_id"] in {k.id for k in Keyring.in_data_dir(shared_server.data_dir).list()}

    names = [i["name"] for i in http.get(f"{A}/instances").json()["instances"]]
    assert {"default", "inst-a"} <= set(names)
    assert http.get(f"{A}/instances/inst-a").json()["root_key_id"] == made["root_key_id"]

    assert error(http.post(f"{A}/instances", json={"name": "inst-a"}), 409)["code"] == (
        "instance_exists"
    )
    error(http.post(f"{A}/instances", json={"name": "bad name!"}), 400)
    error(http.get(f"{A}/instances/nope"), 404)
    assert http.delete(f"{A}/instances/inst-a").status_code == 204
    error(http.get(f"{A}/instances/inst-a"), 404)
    error(http.delete(f"{A}/instances/inst-a"), 404)


def test_instance_rotation_schedule(http: httpx.Client) -> None:
    new_instance(http, "inst-sched")
    url = f"{A}/instances/inst-sched"
    assert http.get(url).json()["rotation_days"] is None
    reply = http.patch(url, json={"rotation_days": 90})
    assert reply.status_code == 200, reply.text
    assert reply.json()["rotation_days"] == 90 and reply.json()["name"] == "inst-sched"
    assert http.get(url).json()["rotation_days"] == 90
    assert http.patch(url, json={}).json()["rotation_days"] == 90  # left out: unchanged
    assert http.patch(url, json={"rotation_days": 0.25}).json()["rotation_days"] == 0.25
    for bad in (0, -1, "often", 10**9):
        assert error(http.patch(url, json={"rotation_days": bad}), 400)["code"]
    assert error(http.patch(url, json=[1]), 400)
    body = error(http.patch(f"{A}/instances/nope", json={"rotation_days": 1}), 404)
    assert body["code"] == "instance_not_found"
    assert http.patch(url, json={"rotation_days": None}).json()["rotation_days"] is None
    assert http.get(url).json()["rotation_days"] is None


def test_instance_bound_to_an_existing_root_key(
    http: httpx.Client, shared_server: KmipdServer
) -> None:
    root_key = Keyring.in_data_dir(shared_server.data_dir).create("made outside the API")
    made = new_instance(http, "inst-bound", root_key_id=root_key)
    assert made["root_key_id"] == root_key and made["root_key_created"] is False
    body = error(http.post(f"{A}/instances", json={"name": "x1", "root_key_id": "nope"}), 400)
    assert body["code"] == "invalid_root_key" and "root_key_id out" in body["message"]


def test_instance_with_keys_is_deleted_only_with_force(
    http: httpx.Client, shared_server: KmipdServer, tmp_path: Path
) -> None:
    new_instance(http, "inst-keys")
    issued = issue(http, "inst-keys")
    creds = write_pair(tmp_path, "c", issued["certificate"]["pem"], issued["private_key_pem"])
    kmip_works(shared_server, creds)
    body = error(http.delete(f"{A}/instances/inst-keys"), 409)
    assert body["code"] == "instance_has_keys" and "force=true" in body["message"]
    assert http.delete(f"{A}/instances/inst-keys", params={"force": "true"}).status_code == 204
    assert kmip_refused(shared_server, creds)
    # The name can be used again, with nothing of the old instance in it.
    assert new_instance(http, "inst-keys")["keys"] == 0


# -- certificates ----------------------------------------------------------------------------


def test_issued_certificate_works_at_once_and_delete_cuts_it(
    http: httpx.Client, shared_server: KmipdServer, tmp_path: Path
) -> None:
    new_instance(http, "inst-issue")
    issued = issue(http, "inst-issue", "vc01.example.com")
    certificate = issued["certificate"]
    assert certificate["kind"] == "pinned"
    assert "CN=vc01.example.com" in certificate["subject"]
    assert "BEGIN PRIVATE KEY" in issued["private_key_pem"]
    creds = write_pair(tmp_path, "vc", certificate["pem"], issued["private_key_pem"])
    kmip_works(shared_server, creds)  # no wait for the trust refresh timer

    listed = http.get(f"{A}/instances/inst-issue/certificates").json()["certificates"]
    assert [c["fingerprint"] for c in listed] == [certificate["fingerprint"]]
    assert listed[0]["last_seen"] is not None
    assert listed[0]["not_after"] > time.time() + 700 * 86400
    assert "private_key" not in str(listed)
    shown = http.get(f"{A}/instances/inst-issue/certificates/{certificate['fingerprint']}")
    assert shown.json()["fingerprint"] == certificate["fingerprint"]

    fp = certificate["fingerprint"]
    with shared_server.connect(context=shared_server.tls_context(certificate=creds)) as open_one:
        open_one.call(kmip.discover_versions())
        assert http.delete(f"{A}/instances/inst-issue/certificates/{fp}").status_code == 204
        with pytest.raises((ConnectionError, OSError)):
            open_one.call(kmip.discover_versions())  # the open connection is cut
    assert kmip_refused(shared_server, creds)  # and the next one refused
    error(http.delete(f"{A}/instances/inst-issue/certificates/{fp}"), 404)


def test_uploaded_certificate_is_pinned_on_one_instance_only(
    http: httpx.Client, shared_server: KmipdServer, tmp_path: Path
) -> None:
    new_instance(http, "inst-pin")
    new_instance(http, "inst-pin-2")
    cert, key = kmip.certificate("vcenter self-signed", eku=None)
    reply = http.post(f"{A}/instances/inst-pin/certificates", json={"pem": pem(cert)})
    assert reply.status_code == 201, reply.text
    kmip_works(shared_server, write_pair(tmp_path, "self", pem(cert), key_pem(key)))

    other = http.post(f"{A}/instances/inst-pin-2/certificates", json={"pem": pem(cert)})
    body = error(other, 409)
    assert "inst-pin" in body["message"] and "one instance" in body["message"]
    error(http.post(f"{A}/instances/inst-pin/certificates", json={"pem": pem(cert)}), 409)

    expired, _ = kmip.certificate(
        "old",
        not_before=kmip.now() - dt.timedelta(days=60),
        not_after=kmip.now() - dt.timedelta(days=1),
    )
    body = error(http.post(f"{A}/instances/inst-pin/certificates", json={"pem": pem(expired)}), 400)
    assert "expired" in body["message"]
    error(http.post(f"{A}/instances/inst-pin/certificates", json={"pem": "hello"}), 400)
    error(http.post(f"{A}/instances/nope/certificates", json={"pem": pem(cert)}), 404)


def test_trusted_ca_admits_what_it_issues(
    http: httpx.Client, shared_server: KmipdServer, tmp_path: Path
) -> None:
    new_instance(http, "inst-ca")
    ca = kmip.certificate("vCenter root CA", ca=True)
    leaf, leaf_key = kmip.certificate("vcenter", issuer=ca, eku=kmip.CLIENT_AUTH)
    reply = http.post(f"{A}/instances/inst-ca/certificates/trusted-ca", json={"pem": pem(ca[0])})
    assert reply.status_code == 201, reply.text
    assert reply.json()["kind"] == "ca"
    kmip_works(shared_server, write_pair(tmp_path, "leaf", pem(leaf), key_pem(leaf_key)))
    listed = http.get(f"{A}/instances/inst-ca/certificates").json()["certificates"]
    assert listed[0]["last_seen"] is not None  # seen through the certificates it issued

    body = error(
        http.post(f"{A}/instances/inst-ca/certificates/trusted-ca", json={"pem": pem(leaf)}), 400
    )
    assert "not a CA" in body["message"]


def test_signed_csr_works(http: httpx.Client, shared_server: KmipdServer, tmp_path: Path) -> None:
    new_instance(http, "inst-csr")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vcenter csr")]))
        .sign(key, hashes.SHA256())
    )
    csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    reply = http.post(f"{A}/instances/inst-csr/certificates/sign", json={"csr": csr_pem})
    assert reply.status_code == 201, reply.text
    signed = reply.json()
    assert signed["subject"] == "CN=vcenter csr"
    assert "CN=kmipd CA" in signed["issuer"]
    kmip_works(shared_server, write_pair(tmp_path, "csr", signed["pem"], key_pem(key)))
    body = error(http.post(f"{A}/instances/inst-csr/certificates/sign", json={"csr": "x"}), 400)
    assert "CERTIFICATE REQUEST" in body["message"]


def test_ca_download_needs_a_reader(shared_server: KmipdServer, role_keys: dict[str, str]) -> None:
    with https_client(shared_server) as anonymous:
        assert anonymous.get(f"{A}/ca").status_code == 401
        assert anonymous.get(f"{A}/ca.pem").status_code == 401
    with https_client(shared_server) as anonymous:
        anonymous.headers["Authorization"] = f"Bearer {role_keys['Reader']}"
        document = anonymous.get(f"{A}/ca").json()
        assert document["pem"] == shared_server.ca.read_text()
        assert len(document["fingerprint"]) == 64
        raw = anonymous.get(f"{A}/ca.pem")
        assert raw.status_code == 200
        assert raw.headers["content-type"].startswith("application/x-pem-file")
        assert raw.text == shared_server.ca.read_text()
        paths = anonymous.get("/openapi.json").json()["paths"]
        assert paths[f"{A}/ca"]["get"]["security"] == [{"bearer": []}]
        assert paths[f"{A}/instances"]["get"]["security"] == [{"bearer": []}]


# -- key inventory ---------------------------------------------------------------------------


def test_inventory_filters_paging_show_and_delete(
    http: httpx.Client, shared_server: KmipdServer, tmp_path: Path
) -> None:
    new_instance(http, "inst-inv")
    issued = issue(http, "inst-inv")
    creds = write_pair(tmp_path, "inv", issued["certificate"]["pem"], issued["private_key_pem"])
    fp = issued["certificate"]["fingerprint"]
    with shared_server.connect(context=shared_server.tls_context(certificate=creds)) as conn:
        vc = VCenterSession(conn)
        vc.dv0()
        uids = []
        for n in range(5):
            uid = vc.create_key()
            vc.tag(uid, (("x-Name", f"vm-{n}"), ("x-Component", "disk" if n % 2 else "vm")))
            uids.append(uid)
        vc.get(uids[0])

    listing = http.get(f"{A}/instances/inst-inv/keys").json()
    assert listing["total"] == 5 and [k["uid"] for k in listing["keys"]] == uids
    first = listing["keys"][0]
    assert first["tags"] == {"x-Name": "vm-0", "x-Component": "vm"}
    assert (first["object_type"], first["state"], first["algorithm"], first["length"]) == (
        "SymmetricKey",
        "PreActive",
        "AES",
        256,
    )
    assert first["last_fetched"] is not None and first["last_fetched_by"] == fp
    assert listing["keys"][1]["last_fetched"] is None

    def uids_of(**params: object) -> list[str]:
        reply = http.get(f"{A}/instances/inst-inv/keys", params=params)  # type: ignore[arg-type]
        assert reply.status_code == 200, reply.text
        return [k["uid"] for k in reply.json()["keys"]]

    assert uids_of(x_component="DISK") == [uids[1], uids[3]]
    assert uids_of(x_name="vm-4") == [uids[4]]
    assert uids_of(state="Active") == []
    assert uids_of(state="PreActive", object_type="SymmetricKey") == uids
    paged = http.get(f"{A}/instances/inst-inv/keys", params={"limit": 2, "offset": 2}).json()
    assert [k["uid"] for k in paged["keys"]] == uids[2:4] and paged["total"] == 5
    error(http.get(f"{A}/instances/inst-inv/keys", params={"state": "Melted"}), 400)
    error(http.get(f"{A}/instances/nope/keys"), 404)

    shown = http.get(f"{A}/instances/inst-inv/keys/{uids[0]}").json()
    assert shown["attributes"]["Cryptographic Algorithm"] == ["AES"]
    assert "Digest" not in shown["attributes"]
    error(http.get(f"{A}/instances/inst-inv/keys/nope"), 404)
    error(http.get(f"{A}/instances/default/keys/{uids[0]}"), 404)  # another instance's key

    # Delete one key, Active or not: its material is gone, the others are untouched.
    with shared_server.connect(context=shared_server.tls_context(certificate=creds)) as conn:
        vc = VCenterSession(conn)
        vc.activate(uids[2])
    deleted = http.delete(f"{A}/instances/inst-inv/keys/{uids[2]}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["state"] == "Destroyed" and deleted.json()["has_material"] is False
    with shared_server.connect(context=shared_server.tls_context(certificate=creds)) as conn:
        gone = kmip.item(conn.call(kmip.get(uids[2])))
        assert gone.result_status != 0
        for uid in (uids[0], uids[1], uids[3], uids[4]):
            assert len(kmip.key_material(conn.call(kmip.get(uid)))) == 32
    assert uids_of(state="Destroyed") == [uids[2]]


# -- audit -----------------------------------------------------------------------------------


def test_audit_records_kmip_and_https_changes(
    http: httpx.Client, shared_server: KmipdServer, tmp_path: Path
) -> None:
    new_instance(http, "inst-audit")
    issued = issue(http, "inst-audit")
    fp = issued["certificate"]["fingerprint"]
    creds = write_pair(tmp_path, "a", issued["certificate"]["pem"], issued["private_key_pem"])
    start = int(time.time())
    uid = kmip_works(shared_server, creds)
    with shared_server.connect(context=shared_server.tls_context(certificate=creds)) as conn:
        material = kmip.key_material(conn.call(kmip.get(uid)))
        kmip.item(conn.call(kmip.get("no-such-key")))
    assert http.delete(f"{A}/instances/inst-audit/keys/{uid}").status_code == 200

    def records(**params: object) -> list[dict]:
        reply = http.get(f"{A}/audit", params=params)  # type: ignore[arg-type]
        assert reply.status_code == 200, reply.text
        return reply.json()["records"]

    mine = records(instance="inst-audit", limit=1000)
    actions = [(r["channel"], r["action"], r["result"]) for r in reversed(mine)]
    # A change is recorded before it runs ("started") and with its result. (The started
    # record of create_instance names no instance: the name is in the body, not the path.)
    assert actions[:3] == [
        ("https", "create_instance", "success"),
        ("https", "issue_certificate", "started"),
        ("https", "issue_certificate", "success"),
    ]
    assert ("kmip", "Create", "success") in actions and ("kmip", "Get", "success") in actions
    failed = records(instance="inst-audit", result="failure")
    assert [(r["action"], r["uid"], r["reason"]) for r in failed] == [
        ("Get", "no-such-key", "ItemNotFound")
    ]
    assert all(r["actor"] == fp for r in records(instance="inst-audit", channel="kmip"))
    assert [(r["action"], r["result"]) for r in records(uid=uid, channel="https")] == [
        ("delete_key", "success"),
        ("delete_key", "started"),
    ]
    assert records(uid=uid, actor="admin")[0]["action"] == "delete_key"
    assert records(instance="inst-audit", since=start, action="Create")[0]["uid"] == uid
    assert records(instance="inst-audit", until=start - 3600) == []
    iso = dt.datetime.fromtimestamp(start, dt.UTC).isoformat()
    assert records(instance="inst-audit", since=iso, action="Create")
    error(http.get(f"{A}/audit", params={"since": "yesterday"}), 400)
    page = http.get(f"{A}/audit", params={"instance": "inst-audit", "limit": 2}).json()
    assert len(page["records"]) == 2 and page["total"] == len(mine)

    # A refused change is recorded with its caller and why.
    http.delete(f"{A}/instances/nope")
    refused = records(action="delete_instance", result="failure")[0]
    assert (refused["actor"], refused["instance"], refused["reason"]) == (
        "admin",
        "nope",
        "instance_not_found",
    )

    text = http.get(f"{A}/audit", params={"limit": 1000}).text
    for encoding in (material.hex(), material.hex().upper(), base64.b64encode(material).decode()):
        assert encoding not in text
    assert shared_server.admin_api_key not in text
    assert issued["private_key_pem"].splitlines()[1] not in text


# -- roles -----------------------------------------------------------------------------------

CERT_PATH = f"{A}/instances/roles/certificates"

# (method, path, body) -> the least role that may call it; None: no credential needed.
ENDPOINTS: list[tuple[str, str, dict | None, str | None]] = [
    ("GET", f"{A}/instances", None, "Reader"),
    ("GET", f"{A}/instances/roles", None, "Reader"),
    ("POST", f"{A}/instances", {"name": "roles-new-{n}"}, "Writer"),
    ("DELETE", f"{A}/instances/roles-del-{{n}}", None, "Manager"),
    ("PATCH", f"{A}/instances/roles", {"rotation_days": 365}, "Writer"),
    ("GET", CERT_PATH, None, "Reader"),
    ("GET", f"{CERT_PATH}/{{fp}}", None, "Reader"),
    ("POST", CERT_PATH, {"pem": "{pin}"}, "Writer"),
    ("POST", f"{CERT_PATH}/trusted-ca", {"pem": "{ca}"}, "Writer"),
    ("POST", f"{CERT_PATH}/issue", {"common_name": "r"}, "Writer"),
    ("POST", f"{CERT_PATH}/sign", {"csr": "{csr}"}, "Writer"),
    ("DELETE", f"{CERT_PATH}/{{fp}}", None, "Manager"),
    ("GET", f"{A}/instances/roles/keys", None, "Reader"),
    ("GET", f"{A}/instances/roles/keys/{{uid}}", None, "Reader"),
    ("DELETE", f"{A}/instances/roles/keys/{{uid}}", None, "Manager"),
    ("GET", f"{A}/audit", None, "Reader"),
    ("GET", f"{A}/apikeys", None, "Manager"),
    ("POST", f"{A}/apikeys", {"service_id": "r", "role": "Reader"}, "Manager"),
    ("DELETE", f"{A}/apikeys/{{apikey}}", None, "Manager"),
    ("GET", f"{A}/ca", None, "Reader"),
    ("GET", f"{A}/ca.pem", None, "Reader"),
    ("POST", f"{A}/instances/roles/rotate", None, "Writer"),
    ("GET", f"{A}/instances/roles/rewrap", None, "Reader"),
    ("POST", f"{A}/instances/roles/rewrap", None, "Writer"),
    ("DELETE", f"{A}/instances/roles/wrapping-keys/1", None, "Manager"),
    # On a fresh instance per call: disabling the shared one would stop the other fixtures.
    ("POST", f"{A}/instances/roles-del-{{n}}/root-key/disable", None, "Manager"),
    ("POST", f"{A}/instances/roles-del-{{n}}/root-key/enable", None, "Manager"),
    ("DELETE", f"{A}/instances/roles-del-{{n}}/root-key", None, "Manager"),
    # What the web console reads (routes/console_views.py).
    ("GET", f"{A}/session", None, "Reader"),
    ("GET", f"{A}/instances/roles/stale-keys", None, "Reader"),
    ("GET", f"{A}/nodes", None, "Reader"),
]
RANK = {"Reader": 1, "Writer": 2, "Manager": 3}
SUCCESS = {"GET": (200,), "POST": (201,), "PATCH": (200,), "DELETE": (200, 204)}
# Actions that answer 200 or 202, or may be refused on their merits once the role admits
# the caller (retiring a wrapping key version still in use: 409).
ACTION_SUCCESS = {
    ("POST", f"{A}/instances/roles/rotate"): (200,),
    ("POST", f"{A}/instances/roles/rewrap"): (202,),
    ("DELETE", f"{A}/instances/roles/wrapping-keys/1"): (204, 409),
    ("POST", f"{A}/instances/roles-del-{{n}}/root-key/disable"): (200,),
    # A fresh instance's root key is active: enabling it is refused on its merits.
    ("POST", f"{A}/instances/roles-del-{{n}}/root-key/enable"): (200, 409),
    ("DELETE", f"{A}/instances/roles-del-{{n}}/root-key"): (200,),
}


def test_role_table(
    http: httpx.Client,
    shared_server: KmipdServer,
    role_keys: dict[str, str],
    tmp_path: Path,
) -> None:
    """Every endpoint with every role and with no credential: allowed or 401/403."""
    new_instance(http, "roles")
    issued = issue(http, "roles", "roles kmip")
    creds = write_pair(tmp_path, "roles", issued["certificate"]["pem"], issued["private_key_pem"])
    table = {(method, path) for method, path, _, _ in ENDPOINTS}
    for path, operations in http.get("/openapi.json").json()["paths"].items():
        if path.startswith(A):
            for method in operations:
                assert any(m == method.upper() and _same_route(p, path) for m, p in table), (
                    f"{method.upper()} {path} is missing from the role table"
                )

    n = 0
    with https_client(shared_server) as client:
        for method, path, body, least in ENDPOINTS:
            for caller in ("none", "Reader", "Writer", "Manager"):
                n += 1
                fill = _fixtures(http, shared_server, creds, n)
                url = path.format(**fill)
                payload = (
                    {k: v.format(**fill) if isinstance(v, str) else v for k, v in body.items()}
                    if body is not None
                    else None
                )
                headers = {} if caller == "none" else bearer(role_keys[caller])
                reply = client.request(method, url, json=payload, headers=headers)
                if least is None or (caller != "none" and RANK[caller] >= RANK[least]):
                    wanted = ACTION_SUCCESS.get((method, path), SUCCESS[method])
                    assert reply.status_code in wanted, (
                        method,
                        path,
                        caller,
                        reply.status_code,
                        reply.text,
                    )
                else:
                    want = 401 if caller == "none" else 403
                    assert reply.status_code == want, (method, path, caller, reply.text)


def _same_route(template: str, documented: str) -> bool:
    a, b = template.split("/"), documented.split("/")
    return len(a) == len(b) and all(
        x == y or x.startswith("{") or y.startswith("{") for x, y in zip(a, b, strict=True)
    )


def _fixtures(
    http: httpx.Client, server: KmipdServer, creds: tuple[Path, Path], n: int
) -> dict[str, str]:
    """Fresh things for one call to act on: an instance to delete, a certificate, a key..."""
    new_instance(http, f"roles-del-{n}")
    fresh, _ = kmip.certificate(f"roles pin {n}")
    ca, _ = kmip.certificate(f"roles ca {n}", ca=True)
    pinned, _ = kmip.certificate(f"roles pinned {n}")
    fp = http.post(CERT_PATH, json={"pem": pem(pinned)}).json()["fingerprint"]
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"r{n}")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    apikey = http.post(f"{A}/apikeys", json={"service_id": f"r{n}", "role": "Reader"}).json()
    return {
        "n": str(n),
        "pin": pem(fresh),
        "ca": pem(ca),
        "csr": csr,
        "fp": fp,
        "apikey": apikey["id"],
        "uid": kmip_works(server, creds),
    }
