"""``kmipd migrate --data-dir DIR``: bring the store's schema to this release's version;
``--from-sqlite FILE`` copies a single-node SQLite setup into the PostgreSQL store that
DIR/kmipd.toml names, without decrypting anything; ``--check`` only reports.

Run it with every node stopped (``kmipd serve`` refuses a schema that is behind or ahead).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from kmipd import config
from kmipd.cli.errors import EXIT_USAGE, CommandError
from kmipd.keys.keyring import KEYRING_DIR, KEYRING_FILE, KeyringError
from kmipd.store import migrations
from kmipd.store.postgres_database import is_postgres_url
from kmipd.store.sqlite_to_postgres import copy_sqlite_to_postgres
from kmipd.store.store import Store, StoreError


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "migrate",
        help="bring the database schema up to date, or copy a SQLite setup into PostgreSQL",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="the data directory")
    parser.add_argument(
        "--from-sqlite",
        type=Path,
        metavar="FILE",
        help="copy this single-node SQLite database (and the data directory's keyring) into "
        "the PostgreSQL store of kmipd.toml, which must be new",
    )
    parser.add_argument(
        "--keyring",
        type=Path,
        metavar="FILE",
        help="with --from-sqlite: the keyring file to copy (default DIR/keyring/root-keys.json)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only report the schema version; exit 1 if the database needs migrating",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = config.load(args.data_dir)
    except config.ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    try:
        store = Store.from_url(settings.store.url, base=settings.data_dir, pool_size=2)
    except StoreError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if args.check:
        return asyncio.run(_check(store))
    if args.from_sqlite is not None:
        if not is_postgres_url(settings.store.url):
            raise CommandError(
                "--from-sqlite copies into PostgreSQL: set store.url in "
                f"{settings.data_dir / config.CONFIG_FILE} to postgresql://… first",
                EXIT_USAGE,
            )
        keyring = args.keyring or settings.data_dir / KEYRING_DIR / KEYRING_FILE
        return asyncio.run(_copy(store, args.from_sqlite, keyring, settings.store.url))
    return asyncio.run(_migrate(store))


async def _check(store: Store) -> int:
    try:
        await store.open()
    except migrations.SchemaMismatch as exc:
        print(f"kmipd migrate: {exc}")
        return 1
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    await store.close()
    print(f"{store.describe()}: schema version {migrations.LATEST}, up to date")
    return 0


async def _migrate(store: Store) -> int:
    try:
        applied = await store.open(migrate=True)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    await store.close()
    if applied:
        done = ", ".join(
            f"{m.version} ({m.summary})" for m in migrations.MIGRATIONS if m.version in applied
        )
        print(f"{store.describe()}: applied migration(s) {done}; now at {migrations.LATEST}")
    else:
        print(f"{store.describe()}: schema version {migrations.LATEST}, nothing to do")
    return 0


async def _copy(store: Store, source: Path, keyring_file: Path, url: str) -> int:
    """The keyring first (a no-op when PostgreSQL already holds the very same document), then
    the rows in one transaction: after a failure, running the same command again is safe."""
    from kmipd.keys.keyring_storage import copy_keyring_file_to_postgres

    if keyring_file.exists():
        try:
            keys = copy_keyring_file_to_postgres(keyring_file, url)
        except KeyringError as exc:
            raise CommandError(f"nothing was copied: {exc.message}") from None
        print(f"copied the keyring {keyring_file} ({keys} keys, still encrypted)")
    else:
        print(f"no keyring file at {keyring_file}: built-in root keys were not copied")
    try:
        await store.open(migrate=True)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    try:
        copied = copy_sqlite_to_postgres(source, store)
    except StoreError as exc:
        raise CommandError(f"no rows were copied: {exc}") from None
    finally:
        await store.close()
    rows = ", ".join(f"{n} {table}" for table, n in copied.items())
    print(f"copied {source} into {store.describe()}: {rows}")
    return 0
