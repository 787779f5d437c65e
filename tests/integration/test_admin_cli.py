"""The admin CLI (``kmipd instance|cert|key|apikey|audit|ca``) against a real server: it calls
the REST API, prints tables or JSON, and exits 0/1/2/3/4."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import kmip
from tests.support.admin import kmip_refused, kmip_works
from tests.support.cli import Cli
from tests.support.server import KmipdServer


@pytest.fixture
def cli(shared_server: KmipdServer, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(shared_server, capsys)


def test_instance_commands(cli: Cli) -> None:
    code, out, err = cli("instance", "create", "cli-a")
    assert code == 0, err
    assert out.startswith("created instance cli-a bound to root key")
    assert cli.json("instance", "show", "cli-a")["name"] == "cli-a"
    code, out, _ = cli("instance", "list")
    assert out.splitlines()[0].split() == ["NAME", "ROOT", "KEY", "CERTIFICATES", "KEYS", "CREATED"]
    assert any(line.startswith("cli-a ") for line in out.splitlines())
    assert "cli-a" in [i["name"] for i in cli.json("instance", "list")["instances"]]
    code, out, _ = cli("instance", "show", "cli-a")
    assert "root key" in out and "certificates" in out

    code, _, err = cli("instance", "create", "cli-a")
    assert code == 1 and "exists" in err and err.count("\n") == 1
    assert cli.json("instance", "create", "cli-b", "--provider", "builtin")["provider"] == "builtin"
    code, _, err = cli("instance", "create", "cli-c", "--provider", "nope")
    assert code != 0 and "nope" in err and err.count("\n") == 1
    code, _, err = cli("instance", "show", "cli-missing")
    assert code == 3 and "no instance named 'cli-missing'" in err
    code, _, err = cli("instance", "delete", "cli-a", "--force")
    assert code == 2 and "--yes" in err
    assert cli("instance", "delete", "cli-a")[0] == 0
    assert cli("instance", "show", "cli-a")[0] == 3


def test_connection_errors_say_what_to_do(
    cli: Cli, shared_server: KmipdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KMIPD_DATA_DIR", raising=False)
    monkeypatch.delenv("KMIPD_URL", raising=False)
    monkeypatch.delenv("KMIPD_API_KEY", raising=False)
    code, _, err = cli("instance", "list", connect=False)
    assert code == 2 and "--url" in err and "--data-dir" in err
    code, _, err = cli("instance", "list", "--api-key", "kmipd-wrong")
    assert code == 4 and "--api-key" in err
    url = ["--url", shared_server.https_url]
    code, _, err = cli("instance", "list", *url, "--api-key", "x", connect=False)
    assert code == 1 and "--ca" in err  # kmipd's CA is not in the system's trust store
    ca = ["--ca", str(shared_server.ca)]
    monkeypatch.setenv("KMIPD_API_KEY", shared_server.admin_api_key)
    assert cli("instance", "list", *url, *ca, connect=False)[0] == 0
    code, _, err = cli("instance", "list", "--url", "https://127.0.0.1:1", *ca, connect=False)
    assert code == 1 and "kmipd serve" in err
    reader = cli.json("apikey", "create", "--service-id", "cli-reader", "--role", "Reader")
    monkeypatch.setenv("KMIPD_API_KEY", reader["api_key"])
    code, _, err = cli("instance", "create", "cli-r", *url, *ca, connect=False)
    assert code == 4 and "Writer" in err


def test_cert_commands(cli: Cli, shared_server: KmipdServer, tmp_path: Path) -> None:
    assert cli("instance", "create", "cli-certs")[0] == 0
    cert_out, key_out = tmp_path / "vc.pem", tmp_path / "vc-key.pem"
    code, out, err = cli(
        "cert",
        "issue",
        "cli-certs",
        "--common-name",
        "vc.example",
        "--cert-out",
        str(cert_out),
        "--key-out",
        str(key_out),
    )
    assert code == 0, err
    assert "PRIVATE KEY" not in out and "BEGIN PRIVATE KEY" in key_out.read_text()
    assert key_out.stat().st_mode & 0o777 == 0o600
    kmip_works(shared_server, (cert_out, key_out))
    code, _, err = cli(
        "cert", "issue", "cli-certs", "--common-name", "x", "--key-out", str(key_out)
    )
    assert code == 2 and "exists" in err  # checked before a key is made and lost

    pinned, _ = kmip.certificate("cli pinned")
    pinned_file = tmp_path / "pinned.pem"
    pinned_file.write_bytes(pinned.public_bytes(serialization.Encoding.PEM))
    uploaded = cli.json("cert", "upload", "cli-certs", str(pinned_file))
    assert uploaded["kind"] == "pinned"
    code, _, err = cli("cert", "upload", "cli-certs", str(tmp_path / "missing.pem"))
    assert code == 2 and "does not exist" in err

    ca, _ = kmip.certificate("cli ca", ca=True)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    assert cli.json("cert", "trust-ca", "cli-certs", str(ca_file))["kind"] == "ca"

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cli csr")]))
        .sign(key, hashes.SHA256())
    )
    csr_file, signed_file = tmp_path / "vc.csr", tmp_path / "signed.pem"
    csr_file.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    code, out, err = cli("cert", "sign-csr", "cli-certs", str(csr_file), "--out", str(signed_file))
    assert code == 0, err
    signed = x509.load_pem_x509_certificate(signed_file.read_bytes())
    assert signed.public_key() == key.public_key()

    code, out, _ = cli("cert", "list", "cli-certs")
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["SHA-256", "KIND"] and "LAST SEEN" in header
    assert len(rows) == 4
    issued_row = next(r for r in rows if "vc.example" in r)
    assert "-" not in issued_row.split()[-1]  # seen: it was used over KMIP above

    fp = uploaded["fingerprint"]
    code, out, err = cli("cert", "delete", "cli-certs", fp[:12])
    assert code == 0, err
    assert fp in out
    code, _, err = cli("cert", "delete", "cli-certs", fp[:12])
    assert code == 3
    code, _, err = cli("cert", "delete", "cli-certs", "ab")
    assert code == 2

    issued_fp = next(
        c["fingerprint"]
        for c in cli.json("cert", "list", "cli-certs")["certificates"]
        if "vc.example" in c["subject"]
    )
    assert cli("cert", "delete", "cli-certs", issued_fp)[0] == 0
    assert kmip_refused(shared_server, (cert_out, key_out))


def test_key_commands(cli: Cli, shared_server: KmipdServer, tmp_path: Path) -> None:
    assert cli("instance", "create", "cli-keys")[0] == 0
    issued = cli.json("cert", "issue", "cli-keys", "--common-name", "k")
    cert, key = tmp_path / "k.pem", tmp_path / "k-key.pem"
    cert.write_text(issued["certificate"]["pem"])
    key.write_text(issued["private_key_pem"])
    uids = [kmip_works(shared_server, (cert, key)) for _ in range(3)]

    listing = cli.json("key", "list", "cli-keys")
    assert [k["uid"] for k in listing["keys"]] == uids and listing["total"] == 3
    code, out, _ = cli("key", "list", "cli-keys", "--limit", "2")
    assert uids[0] in out and uids[2] not in out and "2 of 3" in out
    assert cli.json("key", "list", "cli-keys", "--state", "Active")["keys"] == []
    code, _, err = cli("key", "list", "cli-keys", "--state", "Melted")
    assert code == 1 and "unknown state" in err
    code, out, _ = cli("key", "show", "cli-keys", uids[0])
    assert "PreActive" in out and "AES 256" in out
    assert cli("key", "show", "cli-keys", "nope")[0] == 3

    code, _, err = cli("key", "delete", "cli-keys", uids[1])
    assert code == 2 and "--yes" in err
    code, out, err = cli("key", "delete", "cli-keys", uids[1], "--yes")
    assert code == 0, err
    assert "Destroyed" in out
    assert [k["state"] for k in cli.json("key", "list", "cli-keys")["keys"]] == [
        "PreActive",
        "Destroyed",
        "PreActive",
    ]


def test_apikey_audit_and_ca_commands(cli: Cli, shared_server: KmipdServer, tmp_path: Path) -> None:
    code, out, err = cli("apikey", "create", "--service-id", "cli-ops", "--role", "Writer")
    assert code == 0
    secret = out.strip()
    assert secret.startswith("kmipd-") and "shown only now" in err
    keys = cli.json("apikey", "list")["api_keys"]
    key_id = next(k["id"] for k in keys if k["service_id"] == "cli-ops")
    code, out, _ = cli("apikey", "list")
    assert "cli-ops" in out and secret not in out
    assert cli("apikey", "revoke", key_id)[0] == 0
    assert cli("apikey", "revoke", key_id)[0] == 3
    code, _, err = cli("apikey", "create", "--service-id", "x", "--role", "God")
    assert code == 2

    records = cli.json("audit", "list", "--action", "revoke_api_key")["records"]
    records = [r for r in records if r["result"] != "started"]  # each change's first record
    assert records[0]["uid"] == key_id and records[0]["actor"] == "admin"
    assert [r["result"] for r in records[:2]] == ["failure", "success"]
    code, out, _ = cli("audit", "list", "--channel", "https", "--limit", "5")
    assert out.splitlines()[0].split()[:3] == ["TIME", "CHANNEL", "ACTOR"]
    assert secret not in cli("audit", "list", "--limit", "1000")[1]

    out_file = tmp_path / "kms-ca.pem"
    code, _, err = cli("ca", "download", "--out", str(out_file))
    assert code == 0 and "SHA-256" in err
    assert out_file.read_text() == shared_server.ca.read_text()
    code, out, _ = cli(
        "ca",
        "download",
        "--url",
        shared_server.https_url,
        "--api-key",
        shared_server.admin_api_key,
        "--insecure",
        connect=False,
    )
    assert code == 0 and out == shared_server.ca.read_text()


def test_the_kmipd_command_runs_them(shared_server: KmipdServer) -> None:
    env = dict(os.environ, KMIPD_DATA_DIR=str(shared_server.data_dir))
    done = subprocess.run(
        [sys.executable, "-m", "kmipd", "instance", "show", "default", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "default"
    missing = subprocess.run(
        [sys.executable, "-m", "kmipd", "key", "show", "default", "no-such-uid"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert missing.returncode == 3
    assert missing.stderr.strip() == (
        "kmipd key: instance 'default' has no key with UID no-such-uid"
    )


def test_instance_root_key_commands(cli: Cli, shared_server: KmipdServer) -> None:
    """Disable and delete an instance's root key from the CLI: its keys are refused at once.
    (Enable works the same way; the built-in keyring refuses it for keyprotect.action_delay,
    30 s, after a disable, as Key Protect does: test_cluster.py enables through the API.)"""
    credentials = shared_server.add_instance("cli-rk")
    uid = kmip_works(shared_server, credentials)
    assert not kmip_refused_key(shared_server, credentials, uid)
    code, out, err = cli("instance", "root-key", "disable", "cli-rk")
    assert code == 0, err
    assert "is now disabled" in out
    assert kmip_refused_key(shared_server, credentials, uid)
    code, _, err = cli("instance", "root-key", "enable", "cli-rk")
    assert code == 1 and "refused to enable" in err and err.count("\n") == 1
    code, _, err = cli("instance", "root-key", "delete", "cli-rk")
    assert code == 2 and "--yes" in err and err.count("\n") == 1
    assert cli.json("instance", "root-key", "delete", "cli-rk", "--yes")["state"] == "deleted"
    assert kmip_refused_key(shared_server, credentials, uid)
    code, _, err = cli("instance", "root-key", "disable", "cli-missing")
    assert code == 3 and "cli-missing" in err


def kmip_refused_key(server: KmipdServer, credentials: tuple[Any, Any], uid: str) -> bool:
    """Whether a Get of ``uid`` by ``credentials`` is refused (no material comes back)."""
    context = server.tls_context(certificate=credentials)
    with server.connect(context=context) as connection:
        item = kmip.item(connection.call(kmip.get(uid)))
    return item.payload is None
