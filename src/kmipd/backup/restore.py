"""Build a working setup in a new data directory from a backup file (``kmipd restore``).

What it makes: the store (the backup's rows, in SQLite or in a new PostgreSQL database,
migrated if the backup is of an older schema), the keyring document, kmipd.toml (the
backup's settings; the store, ports and TLS files are this machine's), the Key Protect
instance id, a new Manager API key (``DIR/admin-api-key``; the backup's API keys keep
working) and the TLS files: the operator's ``pki`` directory when given, else a new CA and
server certificate (clients, vCenter included, must then trust the new ``pki/ca.pem``; the
allowed client certificates are restored and keep working).

The keyring master key is never in a backup. Given (``master_key_file`` or
``KMIPD_KEYRING_KEY``), it is checked against the keyring before anything is written: a key
that does not open it is refused. Not given, the setup is restored but its keys cannot be
read: ``kmipd serve`` refuses to start until ``DIR/keyring/master.key`` is put in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kmipd import config, pki
from kmipd.api.auth import Role, hash_secret, load_signing_key, new_secret
from kmipd.backup import archive
from kmipd.initialise import ADMIN_SERVICE_ID, API_KEY_FILE, KEYPROTECT_ID_FILE
from kmipd.keys import master_key
from kmipd.keys.keyring import KEYRING_DIR, KEYRING_FILE, Keyring, KeyringError
from kmipd.keys.keyring_storage import copy_keyring_file_to_postgres
from kmipd.store import migrations
from kmipd.store.database import Connection, StoreError
from kmipd.store.postgres_database import is_postgres_url
from kmipd.store.records import ApiKeyRecord
from kmipd.store.sqlite_to_postgres import copy_sqlite_to_postgres
from kmipd.store.store import Store

# The files of a pki directory given to restore; the CA key is optional (it may be offline).
PKI_FILES = ("ca.pem", "server.pem", "server-key.pem")
PKI_OPTIONAL = ("ca-key.pem",)
COUNTED = ("instances", "certificates", "objects", "api_keys")


class RestoreRefused(Exception):
    """Nothing was restored (whatever was begun is removed); the message says why."""

    def __init__(self, message: str, *, bad_input: bool = False) -> None:
        super().__init__(message)
        self.bad_input = bad_input  # the backup or an argument is wrong (exit 2)


@dataclass(frozen=True, slots=True)
class RestoreOptions:
    store_url: str | None = None
    kmip_port: int | None = None
    https_port: int | None = None
    server_names: list[str] | None = None
    pki_dir: Path | None = None
    master_key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class RestoreResult:
    settings: config.Settings
    manifest: archive.Manifest
    rows: dict[str, int]
    keyring_keys: int | None  # None: the backup has no keyring document
    master_key_checked: bool  # False: no master key was given; the keys cannot be read yet
    new_pki: bool
    api_key_file: Path


def restore(source: Path, data_dir: Path, options: RestoreOptions) -> RestoreResult:
    try:
        manifest, members = archive.read(source)
    except archive.BackupInvalid as exc:
        raise RestoreRefused(str(exc), bad_input=True) from None
    if manifest.schema_version > migrations.LATEST:
        raise RestoreRefused(
            f"{source} holds a store of schema version {manifest.schema_version} (kmipd "
            f"{manifest.kmipd_version}), newer than this kmipd understands "
            f"({migrations.LATEST}): restore it with that release or a later one",
            bad_input=True,
        )
    data_dir = data_dir.resolve()
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise RestoreRefused(f"{data_dir} is not an empty directory; restore into a new one")
    _check_pki_dir(options.pki_dir, members.get(archive.CA_CERTIFICATE))
    if options.store_url is not None:
        try:
            Store.from_url(options.store_url, base=data_dir)
        except StoreError as exc:
            raise RestoreRefused(f"--store: {exc}", bad_input=True) from None
    with _workdir() as workdir:
        settings = _settings(members[archive.CONFIG], data_dir, options, workdir)
        keyring_file = _keyring_copy(members.get(archive.KEYRING), workdir)
        checked = _check_master_key(keyring_file, options.master_key_file, workdir)
        store_file = workdir / "store.db"
        store_file.write_bytes(members[archive.STORE])
        rows = _count_rows(store_file)
        made = not data_dir.exists()
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            return _build(
                settings, manifest, members, store_file, keyring_file, checked, rows, options
            )
        except OSError as exc:
            _remove_contents(data_dir, remove_itself=made)
            raise RestoreRefused(f"cannot write {exc.filename}: {exc.strerror}") from None
        except BaseException:
            _remove_contents(data_dir, remove_itself=made)
            raise


def _build(
    settings: config.Settings,
    manifest: archive.Manifest,
    members: dict[str, bytes],
    store_file: Path,
    keyring_file: Path | None,
    checked: bool,
    rows: dict[str, int],
    options: RestoreOptions,
) -> RestoreResult:
    data_dir = settings.data_dir
    data_dir.chmod(0o700)
    keys = _restore_keyring(settings, keyring_file, options.master_key_file)
    api_key = new_secret()
    try:
        asyncio.run(_restore_store(settings, store_file, api_key))
    except StoreError as exc:
        raise RestoreRefused(f"the store was not restored: {exc}") from None
    new_pki = _restore_pki(settings, options)
    load_signing_key(data_dir)
    pki.write_private(data_dir / API_KEY_FILE, (api_key + "\n").encode())
    instance_id = members.get(archive.KEYPROTECT_ID, f"{uuid.uuid4()}\n".encode())
    pki.write_public(data_dir / KEYPROTECT_ID_FILE, instance_id)
    # Written last: its presence is what marks the directory as set up.
    pki.write_public(data_dir / config.CONFIG_FILE, config.render(settings).encode())
    return RestoreResult(settings, manifest, rows, keys, checked, new_pki, data_dir / API_KEY_FILE)


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kmipd-restore-") as name:
        os.chmod(name, 0o700)
        yield Path(name)


def _settings(
    text: bytes, data_dir: Path, options: RestoreOptions, workdir: Path
) -> config.Settings:
    """The backup's settings, with this machine's data directory, store, ports and TLS files."""
    holder = workdir / "config"
    holder.mkdir()
    (holder / config.CONFIG_FILE).write_bytes(text)
    try:
        backed_up = config.load(holder)
    except config.ConfigError as exc:
        raise RestoreRefused(
            f"the backup's kmipd.toml cannot be used: {exc}", bad_input=True
        ) from None
    defaults = config.Settings(data_dir=data_dir)
    return dataclasses.replace(
        backed_up,
        data_dir=data_dir,
        store=dataclasses.replace(backed_up.store, url=options.store_url or defaults.store.url),
        tls=defaults.tls,
        kmip=dataclasses.replace(backed_up.kmip, port=options.kmip_port or backed_up.kmip.port),
        https=dataclasses.replace(backed_up.https, port=options.https_port or backed_up.https.port),
    )


def _keyring_copy(document: bytes | None, workdir: Path) -> Path | None:
    if document is None:
        return None
    directory = workdir / KEYRING_DIR
    directory.mkdir(mode=0o700)
    path = directory / KEYRING_FILE
    pki.write_private(path, document)
    return path


def _check_master_key(keyring_file: Path | None, key_file: Path | None, workdir: Path) -> bool:
    """Whether a master key was given and opens the keyring (refused if it does not)."""
    if keyring_file is None:
        if key_file is not None:
            raise RestoreRefused(
                "--keyring-master-key-file was given but the backup holds no keyring",
                bad_input=True,
            )
        return False
    if key_file is None and not os.environ.get(master_key.MASTER_KEY_ENV):
        return False
    trial = workdir / "trial" / KEYRING_DIR
    trial.mkdir(parents=True, mode=0o700)
    shutil.copyfile(keyring_file, trial / KEYRING_FILE)
    os.chmod(trial / KEYRING_FILE, 0o600)
    if key_file is not None:
        pki.write_private(trial / master_key.MASTER_KEY_FILE, _read_key_file(key_file))
    try:
        Keyring(trial / KEYRING_FILE).close()
    except KeyringError as exc:
        # The variable, when set, is what every kmipd process uses, the file being ignored.
        given = master_key.MASTER_KEY_ENV if os.environ.get(master_key.MASTER_KEY_ENV) else key_file
        raise RestoreRefused(
            f"the keyring master key ({given}) does not open the backup's keyring: {exc.message}",
            bad_input=True,
        ) from None
    return True


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RestoreRefused(
            f"cannot read the master key file {path}: {exc.strerror}", bad_input=True
        ) from None


def _check_pki_dir(pki_dir: Path | None, backed_up_ca: bytes | None) -> None:
    if pki_dir is None:
        return
    missing = [name for name in PKI_FILES if not (pki_dir / name).is_file()]
    if missing:
        raise RestoreRefused(
            f"--pki {pki_dir} lacks {', '.join(missing)} (it must hold ca.pem, server.pem and "
            "server-key.pem, and may hold ca-key.pem)",
            bad_input=True,
        )
    if backed_up_ca is not None and (pki_dir / "ca.pem").read_bytes() != backed_up_ca:
        raise RestoreRefused(
            f"{pki_dir / 'ca.pem'} is not the CA certificate of the backed-up setup: give the "
            "pki directory of that setup, or leave --pki out to make a new CA",
            bad_input=True,
        )


def _restore_keyring(
    settings: config.Settings, keyring_file: Path | None, key_file: Path | None
) -> int | None:
    keyring_dir = settings.data_dir / KEYRING_DIR
    if key_file is not None:
        keyring_dir.mkdir(mode=0o700, exist_ok=True)
        pki.write_private(keyring_dir / master_key.MASTER_KEY_FILE, _read_key_file(key_file))
    if keyring_file is None:
        return None
    if is_postgres_url(settings.store.url):
        try:
            return copy_keyring_file_to_postgres(keyring_file, settings.store.url)
        except KeyringError as exc:
            raise RestoreRefused(f"the keyring was not restored: {exc.message}") from None
    keyring_dir.mkdir(mode=0o700, exist_ok=True)
    document = keyring_file.read_bytes()
    pki.write_private(keyring_dir / KEYRING_FILE, document)
    return len(json.loads(document).get("keys", {}))


def _count_rows(store_file: Path) -> dict[str, int]:
    try:
        db = sqlite3.connect(f"file:{store_file}?mode=ro", uri=True)
        try:
            return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in COUNTED}
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise RestoreRefused(f"the backup's store cannot be read: {exc}", bad_input=True) from None


async def _restore_store(settings: config.Settings, store_file: Path, api_key: str) -> None:
    url = settings.store.url
    if is_postgres_url(url):
        store = Store.from_url(url, base=settings.data_dir, pool_size=2)
        # Not migrate=True: a database of another kmipd version is someone's setup, refused
        # as it is; the copy below refuses one of this version that holds anything.
        try:
            await store.open()
        except migrations.SchemaMismatch:
            raise RestoreRefused(
                f"{store.describe()} already holds a kmipd setup of another version; restore "
                "only into a new database"
            ) from None
        try:
            await asyncio.to_thread(copy_sqlite_to_postgres, store_file, store)
            await store.database.write(_copy_audit_chain, _audit_chain_row(store_file))
            await _add_admin_key(store, api_key)
        finally:
            await store.close()
        return
    store = Store.from_url(url, base=settings.data_dir)
    target: Path = store.database.path  # type: ignore[attr-defined]
    pki.write_private(target, store_file.read_bytes())
    await store.open(migrate=True)  # a backup of an older schema is brought up to date
    try:
        await _add_admin_key(store, api_key)
    finally:
        await store.close()


def _audit_chain_row(store_file: Path) -> tuple[object, ...] | None:
    db = sqlite3.connect(f"file:{store_file}?mode=ro", uri=True)
    try:
        return db.execute(  # type: ignore[no-any-return]
            "SELECT id, last_hash, records, mac FROM audit_chain WHERE id = 1"
        ).fetchone()
    finally:
        db.close()


def _copy_audit_chain(conn: Connection, row: tuple[object, ...] | None) -> None:
    """The audit chain's head, which the row copy (``sqlite_to_postgres.TABLES``) leaves out."""
    if row is not None:
        conn.execute(
            "INSERT INTO audit_chain (id, last_hash, records, mac) VALUES (?, ?, ?, ?)", row
        )


async def _add_admin_key(store: Store, api_key: str) -> None:
    await store.add_api_key(
        ApiKeyRecord(
            id=str(uuid.uuid4()),
            service_id=ADMIN_SERVICE_ID,
            role=Role.MANAGER.label,
            secret_hash=hash_secret(api_key),
            created=int(time.time()),
            description="made by kmipd restore",
        )
    )


def _restore_pki(settings: config.Settings, options: RestoreOptions) -> bool:
    """The TLS files: copied from ``options.pki_dir``, else a new CA and server certificate;
    whether they are new."""
    tls = settings.tls
    target = {
        "ca.pem": tls.ca,
        "ca-key.pem": tls.ca_key,
        "server.pem": tls.certificate,
        "server-key.pem": tls.private_key,
    }
    if options.pki_dir is not None:
        for name in (*PKI_FILES, *PKI_OPTIONAL):
            source = options.pki_dir / name
            if source.is_file():
                write = pki.write_private if name.endswith("-key.pem") else pki.write_public
                write(settings.path(target[name]), source.read_bytes())
        return False
    ca = pki.create_ca()
    server = pki.issue_server(ca, pki.server_names_with_defaults(options.server_names))
    pki.write_public(settings.path(tls.ca), ca.certificate_pem())
    pki.write_private(settings.path(tls.ca_key), ca.private_key_pem())
    pki.write_public(settings.path(tls.certificate), server.certificate_pem())
    pki.write_private(settings.path(tls.private_key), server.private_key_pem())
    return True


def _remove_contents(directory: Path, *, remove_itself: bool) -> None:
    if remove_itself:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
