"""Make a kmipd SQLite database on an old schema version, as a test fixture.

    python tools/make_schema_fixture.py --version 1 --out tests/fixtures/schema_v1

The schema is made by the migrations of ``kmipd.store.migrations`` truncated at
``--version`` (``MIGRATIONS[:version]``), and the database's ``schema_version`` says that
version. Its rows are made by the real code: a ``kmipd init`` setup in a temporary
directory, symmetric keys created over the KMIP engine, then the rows of the tables the old
schema has (instances, certificates, wrapping keys, objects, API keys) copied into the old
database. The keys are random, so each run makes an equivalent fixture, not the same bytes.

Written to ``--out``: ``kmipd.db``; ``keyring/root-keys.json`` and ``keyring/master.key``
(a master key made for the fixture only: it protects nothing but these test keys);
``expected.json``, each key's instance, Unique Identifier and material (hex), for the tests
(``tests/unit/store/test_migration_fixture.py``) to compare with what they read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from kmipd import config, initialise
from kmipd.app import App
from kmipd.keys.keyring import KEYRING_DIR, KEYRING_FILE
from kmipd.keys.master_key import MASTER_KEY_FILE
from kmipd.protocol import messages
from kmipd.protocol._generated import ObjectType, Operation, ResultStatus
from kmipd.protocol.attributes import Attribute, TemplateAttribute
from kmipd.protocol.objects import ProtocolVersion
from kmipd.protocol.payloads import CreateRequest, GetRequest
from kmipd.protocol.ttlv import ENUMERATION, INTEGER
from kmipd.service.identity import ClientIdentity
from kmipd.store import migrations
from kmipd.store.database import SQLITE

TABLES = ("instances", "certificates", "wrapping_keys", "objects", "api_keys")
AES, KEYS = 3, 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", type=int, required=True, help="the old schema version")
    parser.add_argument("--out", type=Path, required=True, help="the fixture directory")
    args = parser.parse_args(argv)
    if not 1 <= args.version < migrations.LATEST:
        parser.error(f"--version must be from 1 to {migrations.LATEST - 1}")
    with tempfile.TemporaryDirectory(prefix="kmipd-fixture-") as name:
        data_dir = Path(name) / "data"
        initialise.initialise(data_dir)
        keys = asyncio.run(_create_keys(config.load(data_dir)))
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / "kmipd.db"
        target.unlink(missing_ok=True)
        _old_database(data_dir / "kmipd.db", target, args.version)
        keyring_out = args.out / KEYRING_DIR
        keyring_out.mkdir(exist_ok=True)
        for file in (KEYRING_FILE, MASTER_KEY_FILE):
            shutil.copyfile(data_dir / KEYRING_DIR / file, keyring_out / file)
    expected = {
        "schema_version": args.version,
        "note": "test fixture only: keyring/master.key protects nothing but these keys",
        "keys": keys,
    }
    (args.out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {target} (schema version {args.version}, {len(keys)} keys)")
    return 0


def _request(operation: Operation, payload: object) -> bytes:
    return messages.encode_request(
        messages.RequestMessage(
            header=messages.RequestHeader(protocol_version=ProtocolVersion.of((1, 4))),
            batch_items=[messages.RequestBatchItem(operation=operation, payload=payload)],
        )
    )


def _payload(response: bytes) -> Any:
    (item,) = messages.decode_response(response).batch_items
    if item.result_status != ResultStatus.SUCCESS:
        raise RuntimeError(f"KMIP refused: {item.result_reason} {item.result_message}")
    return item.payload


async def _create_keys(settings: config.Settings) -> list[dict[str, Any]]:
    """AES keys of instance ``default``, made and read back through the KMIP engine."""
    app = App.build(settings)
    await app.store.open()
    try:
        client = ClientIdentity(initialise.DEFAULT_INSTANCE, "fixture", "CN=fixture")
        template = TemplateAttribute(
            attributes=[
                Attribute("Cryptographic Algorithm", AES, None, ENUMERATION),
                Attribute("Cryptographic Length", 256, None, INTEGER),
                Attribute("Cryptographic Usage Mask", 12, None, INTEGER),
            ]
        )
        keys = []
        for _ in range(KEYS):
            created = await app.engine.handle_ttlv(
                _request(
                    Operation.CREATE,
                    CreateRequest(
                        object_type=ObjectType.SYMMETRIC_KEY, template_attribute=template
                    ),
                ),
                client,
            )
            uid = _payload(created).unique_identifier
            got = _payload(
                await app.engine.handle_ttlv(
                    _request(Operation.GET, GetRequest(unique_identifier=uid)), client
                )
            )
            material = got.managed_object.key_block.key_value.key_material
            keys.append({"instance": client.instance, "uid": uid, "material": material.hex()})
        return keys
    finally:
        await app.close()


def _old_database(source: Path, target: Path, version: int) -> None:
    old = sqlite3.connect(target, isolation_level=None)
    new = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        with old:
            old.execute("BEGIN")
            for migration in migrations.MIGRATIONS[:version]:
                migration.apply(old, SQLITE)
            old.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            for table in TABLES:
                present = [row[1] for row in old.execute(f"PRAGMA table_info({table})")]
                columns = ", ".join(present)
                marks = ", ".join("?" for _ in present)
                rows = new.execute(f"SELECT {columns} FROM {table}").fetchall()
                old.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
        old.execute("VACUUM")
    finally:
        old.close()
        new.close()


if __name__ == "__main__":
    sys.exit(main())
