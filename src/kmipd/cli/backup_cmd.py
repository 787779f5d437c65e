"""``kmipd backup --data-dir DIR --to FILE``: an online backup of a setup (ciphertext only);
``kmipd restore --from FILE --data-dir DIR``: a working setup from one, on a new directory.

What a backup holds and leaves out is said in ``kmipd.backup``; how a restore treats the
TLS files and the keyring master key in ``kmipd.backup.restore``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from kmipd import config
from kmipd.backup import archive
from kmipd.backup.create import create
from kmipd.backup.restore import RestoreOptions, RestoreRefused, restore
from kmipd.cli.errors import EXIT_FAILED, EXIT_USAGE, CommandError
from kmipd.keys.keyring import KEYRING_DIR, KeyringError
from kmipd.keys.master_key import MASTER_KEY_ENV, MASTER_KEY_FILE
from kmipd.store.postgres_database import redact
from kmipd.store.store import StoreError


def register(commands: Any) -> None:
    backup = commands.add_parser(
        "backup", help="write an online backup of the store, keyring and configuration"
    )
    backup.add_argument("--data-dir", type=Path, required=True, help="the data directory")
    backup.add_argument("--to", type=Path, required=True, metavar="FILE", help="a new file")
    backup.set_defaults(run=run_backup)

    rest = commands.add_parser("restore", help="build a new setup from a backup file")
    rest.add_argument(
        "--from", dest="source", type=Path, required=True, metavar="FILE", help="the backup file"
    )
    rest.add_argument("--data-dir", type=Path, required=True, help="a new, empty directory")
    rest.add_argument("--store", dest="store_url", help="a new store URL (default: SQLite)")
    rest.add_argument("--kmip-port", type=int, help="KMIP port (default: the backup's)")
    rest.add_argument("--https-port", type=int, help="HTTPS port (default: the backup's)")
    rest.add_argument(
        "--server-name",
        action="append",
        dest="server_names",
        metavar="NAME",
        help="DNS name or IP address for the new server certificate (repeatable)",
    )
    rest.add_argument(
        "--pki",
        type=Path,
        metavar="DIR",
        help="a directory with the old ca.pem, server.pem, server-key.pem (and ca-key.pem) to "
        "keep; without it a new CA and server certificate are made",
    )
    rest.add_argument(
        "--keyring-master-key-file",
        type=Path,
        metavar="FILE",
        help=f"the keyring master key (the old DIR/keyring/{MASTER_KEY_FILE}); or set "
        f"{MASTER_KEY_ENV}. Without it the keys cannot be read",
    )
    rest.set_defaults(run=run_restore)


def run_backup(args: argparse.Namespace) -> int:
    try:
        settings = config.load(args.data_dir)
    except config.ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    target: Path = args.to
    if target.exists():
        raise CommandError(f"{target} already exists; name a new file", EXIT_USAGE)
    try:
        manifest = create(settings, target)
    except (StoreError, KeyringError) as exc:
        raise CommandError(f"no backup was written: {exc}", EXIT_FAILED) from None
    except OSError as exc:
        raise CommandError(f"no backup was written: {exc.strerror or exc}") from None
    keyring = (
        f"the keyring document (its material encrypted; the master key is not in the backup: "
        f"keep {settings.data_dir / KEYRING_DIR / MASTER_KEY_FILE} or {MASTER_KEY_ENV} apart, "
        "a restore needs it)"
        if archive.KEYRING in manifest.files
        else "no keyring document"
    )
    print(
        f"kmipd: wrote {target}: backup format {manifest.format_version}, {manifest.engine} "
        f"store at schema version {manifest.schema_version}, {keyring}; SHA-256 checksum "
        f"{manifest.checksum}"
    )
    return 0


def run_restore(args: argparse.Namespace) -> int:
    options = RestoreOptions(
        store_url=args.store_url,
        kmip_port=args.kmip_port,
        https_port=args.https_port,
        server_names=args.server_names,
        pki_dir=args.pki,
        master_key_file=args.keyring_master_key_file,
    )
    try:
        result = restore(args.source, args.data_dir, options)
    except RestoreRefused as exc:
        raise CommandError(
            f"nothing was restored: {exc}", EXIT_USAGE if exc.bad_input else EXIT_FAILED
        ) from None
    except (StoreError, KeyringError) as exc:
        raise CommandError(f"nothing was restored: {exc}") from None
    s = result.settings
    rows = ", ".join(f"{n} {table}" for table, n in result.rows.items())
    print(
        f"kmipd: restored {args.source} (made {time_of(result.manifest)} by kmipd "
        f"{result.manifest.kmipd_version}) into {s.data_dir}: {rows}; store "
        f"{redact(s.store.url)}; KMIP port {s.kmip.port}, HTTPS port {s.https.port}"
    )
    if result.new_pki:
        print(
            f"kmipd: new CA and server certificate in {s.path('pki')}: clients (vCenter) must "
            f"trust {s.path(s.tls.ca)}; the allowed client certificates were restored"
        )
    print(f"kmipd: a new Manager API key is in {result.api_key_file}")
    if result.keyring_keys is not None and not result.master_key_checked:
        key_file = s.data_dir / KEYRING_DIR / MASTER_KEY_FILE
        print(
            f"kmipd restore: warning: no keyring master key was given: the {result.keyring_keys}"
            f" root key(s) and every key they protect cannot be read, and 'kmipd serve' will "
            f"refuse to start, until the master key is put in {key_file} (mode 0600) or "
            f"{MASTER_KEY_ENV} is set",
            file=sys.stderr,
        )
    elif os.environ.get(MASTER_KEY_ENV) and result.master_key_checked:
        print(f"kmipd: the master key in {MASTER_KEY_ENV} opens the keyring; keep it set")
    return 0


def time_of(manifest: archive.Manifest) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(manifest.created_at))
