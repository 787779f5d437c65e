"""Schema upgrades from committed databases of older schema versions.

``tests/fixtures/schema_v{1,2}/`` hold a SQLite database made by the migrations truncated at
that version, with keys made by kmipd's own code (``tools/make_schema_fixture.py``). Each is
refused as it is, migrated to the latest version, and its keys read back through the store
with the bytes ``expected.json`` recorded. A database newer than this kmipd is refused, even
by ``migrate``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kmipd import config
from kmipd.keys.instance_keys import InstanceKeys
from kmipd.keys.keyring import Keyring
from kmipd.keys.providers.registry import build_providers
from kmipd.service.repository import ObjectRepository
from kmipd.store import migrations
from kmipd.store.store import Store

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TOOLS = Path(__file__).resolve().parents[3] / "tools"
OLD_VERSIONS = (1, 2)


def fixture_copy(version: int, tmp_path: Path) -> Path:
    """A private copy of fixture ``schema_v{version}``, its secret files at mode 0600 (git
    keeps only 0644)."""
    target = tmp_path / f"schema_v{version}"
    shutil.copytree(FIXTURES / f"schema_v{version}", target)
    for secret in (target / "keyring").iterdir():
        secret.chmod(0o600)
    return target


def expected(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "expected.json").read_text())  # type: ignore[no-any-return]


def schema_of(path: Path) -> dict[str, set[str]]:
    """Each table's and index's columns, as SQLite reports them."""
    db = sqlite3.connect(path)
    try:
        names = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') "
                "AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            name: {row[2] for row in db.execute(f"PRAGMA index_info({name})")}
            or {row[1] for row in db.execute(f"PRAGMA table_info({name})")}
            for name in names
        }
    finally:
        db.close()


@pytest.mark.parametrize("version", OLD_VERSIONS)
def test_the_fixture_is_of_its_old_version(version: int, tmp_path: Path) -> None:
    directory = fixture_copy(version, tmp_path)
    db = sqlite3.connect(directory / "kmipd.db")
    try:
        assert migrations.current_version(db, "sqlite") == version
        assert expected(directory)["schema_version"] == version
        objects = db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
    finally:
        db.close()
    assert objects == len(expected(directory)["keys"]) > 0


@pytest.mark.parametrize("version", OLD_VERSIONS)
def test_an_old_database_is_migrated_and_its_keys_read(version: int, tmp_path: Path) -> None:
    directory = fixture_copy(version, tmp_path)
    fresh = tmp_path / "fresh.db"

    async def run() -> dict[str, bytes]:
        with pytest.raises(migrations.SchemaMismatch, match=f"is version {version}, this kmipd"):
            await Store.sqlite(directory / "kmipd.db").open()
        store = Store.sqlite(directory / "kmipd.db")
        applied = await store.open(migrate=True)
        assert applied == list(range(version + 1, migrations.LATEST + 1))
        keyring = Keyring(directory / "keyring" / "root-keys.json")
        try:
            providers = build_providers(config.Settings(data_dir=directory), keyring)
            repository = ObjectRepository(store, InstanceKeys(store, keyring, providers))
            read = {}
            for key in expected(directory)["keys"]:
                obj = await repository.get(key["instance"], key["uid"], load_body=True)
                read[key["uid"]] = obj.body.key_block.key_value.key_material
            return read
        finally:
            keyring.close()
            await store.close()

    read = asyncio.run(run())
    assert read == {k["uid"]: bytes.fromhex(k["material"]) for k in expected(directory)["keys"]}

    async def new_database() -> None:
        store = Store.sqlite(fresh)
        await store.open()
        await store.close()

    asyncio.run(new_database())
    # The migrated database has the very schema a new one gets.
    assert schema_of(directory / "kmipd.db") == schema_of(fresh)
    db = sqlite3.connect(directory / "kmipd.db")
    try:
        assert migrations.current_version(db, "sqlite") == migrations.LATEST
    finally:
        db.close()


def test_a_database_newer_than_this_kmipd_is_refused_even_by_migrate(tmp_path: Path) -> None:
    directory = fixture_copy(1, tmp_path)
    db = sqlite3.connect(directory / "kmipd.db")
    with db:
        db.execute("UPDATE schema_version SET version = ?", (migrations.LATEST + 1,))
    db.close()

    async def run(migrate: bool) -> None:
        store = Store.sqlite(directory / "kmipd.db")
        with pytest.raises(migrations.SchemaMismatch, match="newer than this kmipd understands"):
            await store.open(migrate=migrate)

    asyncio.run(run(False))
    asyncio.run(run(True))
    db = sqlite3.connect(directory / "kmipd.db")
    try:
        assert migrations.current_version(db, "sqlite") == migrations.LATEST + 1
        kept = db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
        assert kept == len(expected(directory)["keys"])
    finally:
        db.close()


@pytest.mark.parametrize("version", OLD_VERSIONS)
def test_the_committed_fixture_is_what_the_script_makes(version: int, tmp_path: Path) -> None:
    """The script still makes an equivalent fixture: the same schema and as many keys (the
    keys themselves are random)."""
    out = tmp_path / "made"
    made = subprocess.run(
        [
            sys.executable,
            str(TOOLS / "make_schema_fixture.py"),
            f"--version={version}",
            f"--out={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    committed = FIXTURES / f"schema_v{version}"
    assert schema_of(out / "kmipd.db") == schema_of(committed / "kmipd.db")
    assert len(expected(out)["keys"]) == len(expected(committed)["keys"])
    assert expected(out)["schema_version"] == version
