"""``kmipd rootkey`` against a real server: the root key life cycle over the Key Protect-
compatible API, tables and ``--json``, exit codes 0-4, and a KMIP instance bound to a root
key that stops serving while the key is disabled."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmipd.cli.main import main
from tests.support import kmip
from tests.support.admin import kmip_works
from tests.support.cli import Cli
from tests.support.keyprotect import FAST_RULES, KpClient, keyprotect_server
from tests.support.server import KmipdServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipdServer]:
    """A kmipd whose [keyprotect] time rules are 0: rotate, enable and restore at once."""
    assert FAST_RULES["rotation_interval"] == 0 and FAST_RULES["action_delay"] == 0
    with keyprotect_server(Path(tmp_path_factory.mktemp("rootkey")) / "data") as running:
        yield running


class RootkeyCli(Cli):
    def key(self, *argv: str) -> dict[str, Any]:
        reply = self.json(*argv)
        assert reply["metadata"]["collectionTotal"] == len(reply["resources"]) == 1
        key: dict[str, Any] = reply["resources"][0]
        assert "payload" not in key
        return key


@pytest.fixture
def cli(server: KmipdServer, capsys: pytest.CaptureFixture[str]) -> RootkeyCli:
    return RootkeyCli(server, capsys, "rootkey")


def _fields(out: str) -> dict[str, str]:
    """``print_fields`` output as a dict (values may contain spaces)."""
    pairs = {}
    for line in out.splitlines():
        name, _, value = line.partition("  ")
        pairs[name.strip()] = value.strip()
    return pairs


def _row(out: str, key_id: str) -> list[str]:
    """A table row's cells (columns are at least two spaces apart)."""
    (line,) = [line for line in out.splitlines() if line.startswith(key_id)]
    return re.split(r"\s{2,}", line.strip())


def test_life_cycle(cli: RootkeyCli, server: KmipdServer) -> None:
    code, out, err = cli("create", "cli-crk", "--description", "for the CLI test")
    assert code == 0, err
    assert out.startswith("created root key ")
    key_id = out.split()[3]
    shown = _fields(out.split("\n", 1)[1])
    assert shown["id"] == key_id and shown["name"] == "cli-crk"
    assert shown["state"] == "Active" and shown["versions"] == "1"
    assert shown["last rotated"] == "-" and shown["created"].endswith("Z")

    code, out, _ = cli("list")
    assert out.splitlines()[0].split() == [
        "ID",
        "NAME",
        "STATE",
        "VERSIONS",
        "CREATED",
        "LAST",
        "ROTATED",
    ]
    assert _row(out, key_id)[1:4] == ["cli-crk", "Active", "1"]
    listed = cli.json("list")
    assert key_id in [k["id"] for k in listed["resources"]]
    assert all(k["extractable"] is False for k in listed["resources"])

    code, out, _ = cli("show", key_id)
    assert code == 0 and _fields(out)["description"] == "for the CLI test"
    kp = KpClient(server, server.admin_api_key)
    try:
        assert kp.request("POST", f"/keys/{key_id}/aliases/cli-crk-alias").status_code == 201
    finally:
        kp.close()
    assert cli.key("show", "cli-crk-alias")["id"] == key_id

    code, out, err = cli("rotate", key_id)
    assert code == 0, err
    assert out.startswith(f"rotated root key {key_id}: new version ")
    assert _fields(out.split("\n", 1)[1])["versions"] == "2"
    assert _fields(out.split("\n", 1)[1])["last rotated"] != "-"
    versions = cli.json("versions", key_id)
    assert versions["metadata"]["totalCount"] == 2
    code, out, _ = cli("versions", key_id)
    header, newest, oldest = out.splitlines()
    assert header.split() == ["VERSION", "CREATED", "USE"]
    assert newest.endswith("current") and oldest.startswith(key_id)  # 1st version id = key id

    code, out, err = cli("disable", key_id)
    assert code == 0, err
    assert out.startswith(f"root key {key_id} is Suspended")
    assert cli.key("show", key_id)["state"] == 2
    code, out, _ = cli("list")
    assert _row(out, key_id)[2:4] == ["Suspended", "2"]
    code, _, err = cli("disable", key_id)
    assert code == 1 and err.count("\n") == 1 and "not in a valid state" in err

    code, out, err = cli("enable", key_id)
    assert code == 0, err
    assert out.startswith(f"root key {key_id} is Active")

    code, _, err = cli("delete", key_id)
    assert code == 2 and "--yes" in err and err.count("\n") == 1
    assert cli.key("show", key_id)["state"] == 1  # nothing happened
    code, out, err = cli("delete", key_id, "--yes")
    assert code == 0, err
    assert out.startswith(f"deleted root key {key_id} (restorable until ")
    assert _fields(out.split("\n", 1)[1])["state"] == "Destroyed"
    assert key_id not in cli("list")[1]
    code, out, _ = cli("list", "--all-states")
    assert "Destroyed" in out and key_id in out
    code, _, err = cli("delete", key_id, "--yes")
    assert code == 1 and "restore" in err  # 410 KEY_DELETED_ERR
    code, _, err = cli("rotate", key_id)
    assert code == 1 and err.count("\n") == 1

    restored = cli.key("restore", key_id)
    assert restored["state"] == 1 and restored["id"] == key_id
    code, out, _ = cli("show", key_id)
    assert _fields(out)["state"] == "Active" and _fields(out)["versions"] == "2"


def test_json_output_parses_for_every_command(cli: RootkeyCli) -> None:
    key = cli.key("create", "cli-json")
    assert key["state"] == 1 and key["extractable"] is False and key["imported"] is False
    kid = key["id"]
    assert cli.key("show", kid)["name"] == "cli-json"
    assert kid in [k["id"] for k in cli.json("list", "--all-states")["resources"]]
    assert cli.key("rotate", kid)["keyVersion"]["id"] != kid
    assert len(cli.json("versions", kid)["resources"]) == 2
    assert cli.key("disable", kid)["state"] == 2
    assert cli.key("enable", kid)["state"] == 1
    deleted = cli.key("delete", kid, "--yes")
    assert deleted["state"] == 5 and deleted["deleted"] is True
    assert cli.key("restore", kid)["state"] == 1


def test_import_never_prints_material(cli: RootkeyCli, tmp_path: Path) -> None:
    material = os.urandom(32)
    key_file = tmp_path / "crk.bin"
    key_file.write_bytes(material)
    code, out, err = cli("create", "cli-imported", "--import-file", str(key_file))
    assert code == 0, err
    assert out.startswith("imported root key ")
    kid = out.split()[3]
    assert _fields(out.split("\n", 1)[1])["imported"] == "yes"
    code, _, err = cli("rotate", kid)  # an imported key needs new material
    assert code == 1 and "--import-file" in err
    new_file = tmp_path / "crk2.bin"
    new_material = os.urandom(24)
    new_file.write_bytes(new_material)
    assert cli("rotate", kid, "--import-file", str(new_file))[0] == 0
    everything = "".join(
        cli(*argv)[1] + cli(*argv, "--json")[1]
        for argv in (("show", kid), ("versions", kid), ("list",))
    )
    for secret in (material, new_material):
        assert secret.hex() not in everything
        assert base64.b64encode(secret).decode() not in everything

    hex_file = tmp_path / "crk.hex"
    hex_file.write_text(material.hex())
    code, _, err = cli("create", "cli-bad", "--import-file", str(hex_file))
    assert code == 2 and "16, 24 or 32 bytes" in err
    code, _, err = cli("create", "cli-bad", "--import-file", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err


def test_exit_codes(cli: RootkeyCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMIPD_API_KEY", raising=False)
    monkeypatch.delenv("KMIPD_KP_INSTANCE", raising=False)
    unknown = "00000000-0000-4000-8000-000000000000"
    for argv in (("show", unknown), ("versions", unknown), ("rotate", unknown)):
        code, _, err = cli(*argv)
        assert code == 3, err
        assert (
            err == f"kmipd rootkey: no root key {unknown}; see 'kmipd rootkey list --all-states'\n"
        )
    assert cli("delete", unknown, "--yes")[0] == 3
    assert cli("restore", unknown)[0] == 3

    code, _, err = cli("list", "--api-key", "kmipd-wrong")
    assert code == 4 and "--api-key" in err and err.count("\n") == 1
    kid = cli.key("create", "cli-codes")["id"]
    code, _, err = cli("disable", kid, "--api-key", "kmipd-wrong")
    assert code == 4
    assert cli.key("show", kid)["state"] == 1

    code, _, err = cli("delete", kid)
    assert code == 2 and "--yes" in err
    code, _, err = cli("bogus")
    assert code == 2
    code, _, err = cli("show", kid, "--kp-instance", "not-a-guid")
    assert code == 2 and "--kp-instance" in err
    code, _, err = cli("show", kid, "--kp-instance", unknown)
    assert code == 3 and "--kp-instance" in err
    code, _, err = cli("restore", kid)  # Active: not deleted
    assert code == 1 and err.count("\n") == 1


def test_roles_are_exit_4(cli: RootkeyCli, monkeypatch: pytest.MonkeyPatch) -> None:
    kid = cli.key("create", "cli-roles")["id"]
    main_args = ["apikey", "create", "--service-id", "cli-rk-reader", "--role", "Reader"]
    cli.capsys.readouterr()
    assert main([*main_args, "--json", "--data-dir", str(cli.server.data_dir)]) == 0
    reader = json.loads(cli.capsys.readouterr().out)["api_key"]
    assert cli("show", kid, "--api-key", reader)[0] == 0
    code, _, err = cli("disable", kid, "--api-key", reader)
    assert code == 4 and "Manager" in err and "role" in err
    code, _, err = cli("create", "cli-nope", "--api-key", reader)
    assert code == 4 and "Writer" in err


def test_a_kmip_instance_bound_to_a_disabled_root_key_stops_serving(
    cli: RootkeyCli, server: KmipdServer, tmp_path: Path
) -> None:
    kid = cli.key("create", "cli-vsphere-crk")["id"]
    cli.capsys.readouterr()
    data_dir = ["--data-dir", str(server.data_dir)]
    assert main(["instance", "create", "cli-bound", "--root-key-id", kid, *data_dir]) == 0
    out = cli.capsys.readouterr().out
    assert f"bound to root key {kid}" in out and "new root key" not in out
    assert main(["cert", "issue", "cli-bound", "--common-name", "vc", "--json", *data_dir]) == 0
    issued = json.loads(cli.capsys.readouterr().out)
    cert, key = tmp_path / "vc.pem", tmp_path / "vc-key.pem"
    cert.write_text(issued["certificate"]["pem"])
    key.write_text(issued["private_key_pem"])
    uid = kmip_works(server, (cert, key))

    def kmip_get_succeeds() -> bool:
        context = server.tls_context(certificate=(cert, key))
        with server.connect(context=context) as connection:
            result = kmip.item(connection.call(kmip.get(uid)))
        return bool(result.result_status == kmip.ResultStatus.SUCCESS)

    code, out, err = cli("disable", kid)
    assert code == 0
    assert "cli-bound" in err and "enable" in err  # says which instances stop
    assert not kmip_get_succeeds()
    assert cli("enable", kid)[0] == 0
    assert kmip_get_succeeds()

    code, _, err = cli("delete", kid, "--yes")
    assert code == 0 and "cli-bound" in err and "restore" in err
    assert not kmip_get_succeeds()
    assert cli("restore", kid)[0] == 0
    assert kmip_get_succeeds()


def test_the_kmipd_command_runs_them(server: KmipdServer) -> None:
    env = dict(os.environ, KMIPD_DATA_DIR=str(server.data_dir))
    env.pop("KMIPD_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "kmipd", "rootkey", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["resources"]
    missing = subprocess.run(
        [sys.executable, "-m", "kmipd", "rootkey", "show", "no-such-key"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert missing.returncode == 3
    assert missing.stderr.strip() == (
        "kmipd rootkey: no root key no-such-key; see 'kmipd rootkey list --all-states'"
    )
