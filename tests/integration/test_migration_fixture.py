"""A database of an older schema version, committed as a fixture, upgraded and served.

``tests/fixtures/schema_v{1,2}/`` (``tools/make_schema_fixture.py``) replace the store and
keyring of a new setup: ``kmipd serve`` refuses the old schema and says to migrate,
``kmipd migrate`` upgrades it, and a KMIP client then gets every key of the fixture with the
bytes ``expected.json`` recorded, and can make new ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmipd.store import migrations
from tests.support import kmip
from tests.support.server import init_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TRACEBACK = "Traceback (most recent call last)"


def kmipd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kmipd", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("version", (1, 2))
def test_an_old_database_is_migrated_and_served(tmp_path: Path, version: int) -> None:
    fixture = FIXTURES / f"schema_v{version}"
    expected = json.loads((fixture / "expected.json").read_text())
    server = init_server(tmp_path / "data")
    data_dir = server.data_dir
    for name in ("kmipd.db", "kmipd.db-wal", "kmipd.db-shm"):
        (data_dir / name).unlink(missing_ok=True)
    shutil.copyfile(fixture / "kmipd.db", data_dir / "kmipd.db")
    for name in ("root-keys.json", "master.key"):
        shutil.copyfile(fixture / "keyring" / name, data_dir / "keyring" / name)
        (data_dir / "keyring" / name).chmod(0o600)

    refused = kmipd("serve", "--data-dir", str(data_dir), "--kmip-port", "0", "--https-port", "0")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"is version {version}, this kmipd needs version {migrations.LATEST}" in refused.stderr
    assert "kmipd migrate" in refused.stderr and TRACEBACK not in refused.stderr

    migrated = kmipd("migrate", "--data-dir", str(data_dir))
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    pending = [m for m in migrations.MIGRATIONS if m.version > version]
    applied = ", ".join(f"{m.version} ({m.summary})" for m in pending)
    assert f"applied migration(s) {applied};" in migrated.stdout, migrated.stdout
    assert f"now at {migrations.LATEST}" in migrated.stdout

    credentials = server.allow_certificate("default", "fixture-reader")
    server.start()
    try:
        context = server.tls_context(certificate=credentials)
        with server.connect(context=context) as connection:
            for key in expected["keys"]:
                got = kmip.key_material(connection.call(kmip.get(key["uid"])))
                assert got == bytes.fromhex(key["material"]), key["uid"]
            uid = kmip.created_uid(connection.call(kmip.create_aes()))
            assert len(kmip.key_material(connection.call(kmip.get(uid)))) == 32
    finally:
        server.stop()
    assert TRACEBACK not in server.log()
