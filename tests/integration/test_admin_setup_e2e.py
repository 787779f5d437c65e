"""The administrator's setup from the VMware guide, end to end on a fresh server, through the
admin CLI (which calls the REST API):

make vCenter trust the KMS (CA download); create a root key and a KMIP instance bound to it;
give vCenter a certificate issued by kmipd and allow an ESXi host's own certificate; vCenter
creates keys and tags them as it does (AddAttribute of x-Name, x-Component, ...), the host
fetches them; the inventory shows them with their tags; one disk's key is deleted and that key
alone is gone; the audit trail has it all and no key bytes.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from kmipd.cli.main import main
from kmipd.keys.keyring import Keyring
from kmipd.protocol._generated import ResultReason, ResultStatus
from tests.support import kmip
from tests.support.admin import write_pair
from tests.support.server import KmipdServer
from tests.support.vcenter import PRODUCT_TAGS, VCenterSession


def run(server: KmipdServer, capsys: Any, *argv: str) -> Any:
    capsys.readouterr()
    code = main([*argv, "--data-dir", str(server.data_dir), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_vmware_setup_end_to_end(kmipd_server: KmipdServer, capsys: Any, tmp_path: Path) -> None:
    server = kmipd_server

    # Make vCenter trust the KMS.
    ca = run(server, capsys, "ca", "download")
    assert ca["pem"] == server.ca.read_text()

    # A customer root key, and a "KMIP for VMware" instance bound to it.
    root_key = Keyring.in_data_dir(server.data_dir).create("vsphere CRK")
    instance = run(server, capsys, "instance", "create", "vsphere", "--root-key-id", root_key)
    assert instance["root_key_id"] == root_key

    # vCenter: "KMS certificate and private key" issued by kmipd.
    issued = run(server, capsys, "cert", "issue", "vsphere", "--common-name", "vcenter01")
    vcenter = write_pair(
        tmp_path, "vcenter", issued["certificate"]["pem"], issued["private_key_pem"]
    )
    # An ESXi host with its own (self-signed) certificate, uploaded as an allowed one.
    host_cert, host_key = kmip.certificate("esxi01.example.com", eku=None, rsa_key=True)
    host_pem = tmp_path / "esxi01-upload.pem"
    host_pem.write_bytes(host_cert.public_bytes(serialization.Encoding.PEM))
    uploaded = run(server, capsys, "cert", "upload", "vsphere", str(host_pem))
    host = write_pair(
        tmp_path,
        "esxi01",
        host_pem.read_text(),
        host_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )

    # vCenter creates a key per VM and disk and tags it; the host fetches them.
    disks = [("vm-web", "VM"), ("vm-web-disk1", "Disk"), ("vm-db", "VM")]
    uids: list[str] = []
    material: dict[str, bytes] = {}
    with server.connect(context=server.tls_context(certificate=vcenter)) as connection:
        vc = VCenterSession(connection)
        vc.dv0()
        for name, component in disks:
            uid = vc.create_key()
            vc.tag(
                uid,
                (
                    ("x-Name", name),
                    ("x-Component", component),
                    ("x-Identifier", f"id-{name}"),
                    *PRODUCT_TAGS,
                ),
            )
            vc.activate(uid)
            uids.append(uid)
    with server.connect(context=server.tls_context(certificate=host)) as connection:
        esxi = VCenterSession(connection)
        esxi.dv0()
        for uid in uids:
            material[uid] = esxi.get(uid).managed_object.key_block.key_value.key_material

    # The inventory shows them with their tags, and who fetched them last.
    inventory = run(server, capsys, "key", "list", "vsphere")
    assert inventory["total"] == 3
    by_uid = {k["uid"]: k for k in inventory["keys"]}
    for uid, (name, component) in zip(uids, disks, strict=True):
        key = by_uid[uid]
        assert key["tags"] == {
            "x-Name": name,
            "x-Component": component,
            "x-Identifier": f"id-{name}",
            **dict(PRODUCT_TAGS),
        }
        assert key["state"] == "Active"
        assert key["last_fetched_by"] == uploaded["fingerprint"]
    found = run(server, capsys, "key", "list", "vsphere", "--x-name", "DISK1")
    assert [k["uid"] for k in found["keys"]] == [uids[1]]

    # Revoke one disk: delete its key. That key alone is gone.
    deleted = run(server, capsys, "key", "delete", "vsphere", uids[1], "--yes")
    assert deleted["state"] == "Destroyed" and deleted["has_material"] is False
    for credentials in (vcenter, host):
        with server.connect(context=server.tls_context(certificate=credentials)) as connection:
            gone = kmip.item(connection.call(kmip.get(uids[1])))
            assert gone.result_status == ResultStatus.OPERATION_FAILED
            # KMIP 1.4 has no Object Destroyed: Item Not Found, "was destroyed".
            assert gone.result_reason == ResultReason.ITEM_NOT_FOUND
            assert "destroyed" in (gone.result_message or "")
            for uid in (uids[0], uids[2]):
                assert kmip.key_material(connection.call(kmip.get(uid))) == material[uid]
    states = {k["uid"]: k["state"] for k in run(server, capsys, "key", "list", "vsphere")["keys"]}
    assert states == {uids[0]: "Active", uids[1]: "Destroyed", uids[2]: "Active"}

    # The audit trail: every step, by whom, and no key bytes.
    records = run(server, capsys, "audit", "list", "--instance", "vsphere", "--limit", "1000")
    seen = {(r["channel"], r["action"], r["result"]) for r in records["records"]}
    for step in [
        ("https", "create_instance", "success"),
        ("https", "issue_certificate", "success"),
        ("https", "upload_certificate", "success"),
        ("kmip", "Create", "success"),
        ("kmip", "AddAttribute", "success"),
        ("kmip", "Activate", "success"),
        ("kmip", "Get", "success"),
        ("https", "delete_key", "success"),
        ("kmip", "Get", "failure"),
    ]:
        assert step in seen, step
    deletion = [
        r for r in records["records"] if r["action"] == "delete_key" and r["result"] != "started"
    ]
    assert [(r["uid"], r["actor"]) for r in deletion] == [(uids[1], "admin")]
    host_gets = [
        r
        for r in records["records"]
        if r["action"] == "Get" and r["actor"] == uploaded["fingerprint"]
    ]
    assert {r["uid"] for r in host_gets} == set(uids)

    everything = json.dumps(run(server, capsys, "audit", "list", "--limit", "1000"))
    for key_bytes in material.values():
        for encoding in (key_bytes.hex(), key_bytes.hex().upper(), base64.b64encode(key_bytes)):
            assert (encoding if isinstance(encoding, str) else encoding.decode()) not in everything
    assert issued["private_key_pem"].splitlines()[1] not in everything
    assert server.admin_api_key not in everything
