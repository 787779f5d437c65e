"""``kmipd backup`` and ``kmipd restore``, through the command line, against real servers.

* Online: a node is backed up while KMIP clients create and fetch keys; the backup restored
  into a new data directory (and, for PostgreSQL, a new database) is served by a new
  ``kmipd serve``, and every key in it comes back over KMIP with identical bytes, the old
  client certificates working against the new CA. The snapshot is consistent: every key
  acknowledged before the backup began is in it, none asked for after it ended is.
* The backup holds ciphertext only: no key material, master key, private key or API key.
* Without the keyring master key the restored keys cannot be read: ``kmipd serve`` refuses
  to start with a message naming what is missing; a wrong master key is refused by
  ``restore`` itself; with the right one put in place later, every key reads again.
* Root keys in a remote Key Protect: the provider's API key is not in the backup; the keys
  read once it is supplied again, and the node refuses to start while the service is gone.
* Damaged, tampered, newer or misplaced backups and wrong arguments are refused with exit
  code 2 and a message; a directory or database that is not new, with exit code 1.
* Scheduled backups (``[backup]``): made on time, pruned to ``keep``, one writer per lease;
  a wrong setting stops ``serve``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import secrets
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kmipd import config
from kmipd.app import App, StartupError
from kmipd.backup import archive
from kmipd.backup.schedule import BackupScheduler, backups_in
from kmipd.cli.main import main
from kmipd.protocol._generated import ResultReason, ResultStatus
from kmipd.store import migrations
from kmipd.store.store import Store
from tests.support import admin, kmip
from tests.support.keyprotect import instance_id, keyprotect_server, new_api_key
from tests.support.postgres import fresh_database
from tests.support.server import KmipdServer, free_port, init_server

TRACEBACK = "Traceback (most recent call last)"
MASTER_KEY_ENV = "KMIPD_KEYRING_KEY"
KEYPROTECT_API_KEY_ENV = "KMIPD_KEYPROTECT_API_KEY"


def kmipd(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != MASTER_KEY_ENV}
    return subprocess.run(
        [sys.executable, "-m", "kmipd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def restored_server(data_dir: Path) -> KmipdServer:
    settings = config.load(data_dir)
    return KmipdServer(
        data_dir=data_dir, kmip_port=settings.kmip.port, https_port=settings.https.port
    )


def restore(
    backup: Path, data_dir: Path, *extra: str, master_key: Path | None = None
) -> subprocess.CompletedProcess[str]:
    key = ["--keyring-master-key-file", str(master_key)] if master_key is not None else []
    return kmipd(
        "restore",
        "--from",
        str(backup),
        "--data-dir",
        str(data_dir),
        "--kmip-port",
        str(free_port()),
        "--https-port",
        str(free_port()),
        *key,
        *extra,
    )


# --- load while backing up -------------------------------------------------------------------


@dataclass
class Made:
    instance: str
    uid: str
    material: bytes
    asked: float  # time.monotonic() when the Create was sent
    acknowledged: float  # ... when its Get answered


@dataclass
class Load:
    keys: list[Made] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)


def client_loop(server: KmipdServer, instance: str, load: Load) -> None:
    try:
        with server.connect(instance) as connection:
            while not load.stop.is_set():
                asked = time.monotonic()
                uid = kmip.created_uid(connection.call(kmip.create_aes()))
                material = kmip.key_material(connection.call(kmip.get(uid)))
                with load.lock:
                    load.keys.append(Made(instance, uid, material, asked, time.monotonic()))
    except Exception as exc:  # reported by the test
        load.errors.append(f"{instance}: {type(exc).__name__}: {exc}")


def encodings(secret: bytes) -> list[bytes]:
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    ]


def members_of(backup: Path) -> dict[str, bytes]:
    with tarfile.open(backup, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_online_backup_under_load_restores_every_key(tmp_path: Path, store_url: str) -> None:
    server = init_server(tmp_path / "data", store_url=store_url)
    server.add_instance("tenant")
    server.start()
    load = Load()
    backup = tmp_path / "backup.tar.gz"
    try:
        for instance in ("default", "default", "tenant"):
            with server.connect(instance) as connection:
                uid = kmip.created_uid(connection.call(kmip.create_aes()))
                material = kmip.key_material(connection.call(kmip.get(uid)))
                load.keys.append(Made(instance, uid, material, 0.0, time.monotonic()))
        clients = [
            threading.Thread(target=client_loop, args=(server, instance, load), daemon=True)
            for instance in ("default", "default", "tenant")
        ]
        for client in clients:
            client.start()
        time.sleep(1.0)
        began = time.monotonic()
        made = kmipd("backup", "--data-dir", str(server.data_dir), "--to", str(backup))
        ended = time.monotonic()
        time.sleep(1.0)
        load.stop.set()
        for client in clients:
            client.join(30)
    finally:
        load.stop.set()
        server.stop()
    assert made.returncode == 0, output(made)
    assert "checksum" in made.stdout and TRACEBACK not in output(made)
    assert not load.errors, load.errors
    before = [k for k in load.keys if k.acknowledged < began]
    after = [k for k in load.keys if k.asked > ended]
    assert len(before) > 3 and after, (len(before), len(after))  # the load really overlapped

    # Ciphertext only: no key material, master key, private key or API key in any member.
    members = members_of(backup)
    assert set(members) >= {archive.MANIFEST, archive.STORE, archive.KEYRING, archive.CONFIG}
    master = (server.data_dir / "keyring" / "master.key").read_text().strip()
    secrets_ = [k.material for k in load.keys] + [base64.b64decode(master)]
    for name, data in members.items():
        for secret in secrets_:
            for form in encodings(secret):
                assert form not in data, name
        assert master.encode() not in data, name
        assert b"PRIVATE KEY" not in data, name
        assert server.admin_api_key.encode() not in data, name
    manifest = json.loads(members[archive.MANIFEST])
    assert manifest["schema_version"] == migrations.LATEST
    assert manifest["engine"] == ("postgresql" if store_url.startswith("postgresql") else "sqlite")

    with restore_database(store_url) as restore_url:
        store = ["--store", restore_url] if restore_url else []
        restored = restore(
            backup,
            tmp_path / "restored",
            *store,
            master_key=server.data_dir / "keyring" / "master.key",
        )
        assert restored.returncode == 0, output(restored)
        assert TRACEBACK not in output(restored)
        assert "warning" not in restored.stderr
        target = restored_server(tmp_path / "restored")
        assert (target.data_dir / "admin-api-key").stat().st_mode & 0o777 == 0o600
        assert target.ca.read_bytes() != server.ca.read_bytes()  # a new CA was made
        target.start()
        try:
            found, missing = read_all(target, server, load.keys)
            # The backup's API keys work on the restored node, and so does the new one.
            with admin.https_client(target) as http:
                for credential in (server.admin_api_key, target.admin_api_key):
                    reply = http.get("/admin/v1/instances", headers=admin.bearer(credential))
                    assert reply.status_code == 200, reply.text
                    names = {i["name"] for i in reply.json()["instances"]}
                    assert names == {"default", "tenant"}
        finally:
            target.stop()
        assert TRACEBACK not in target.log()
        if restore_url is not None:  # that database now holds a setup: a second restore
            again = restore(backup, tmp_path / "again", "--store", restore_url)
            assert again.returncode == 1, output(again)
            assert "already holds" in again.stderr and TRACEBACK not in output(again)
            assert not (tmp_path / "again").exists()
    # Every key acknowledged before the backup began is back, with its very bytes; every key
    # asked for after it ended is absent; those in between are whole or absent.
    assert {k.uid for k in before} <= set(found)
    assert not {k.uid for k in after} & set(found)
    for key in load.keys:
        if key.uid in found:
            assert found[key.uid] == key.material, key.uid
        else:
            assert missing[key.uid] == ResultReason.ITEM_NOT_FOUND, key.uid
    print(f"\n{len(load.keys)} keys made under load, {len(found)} in the backup")


@contextlib.contextmanager
def restore_database(store_url: str) -> Iterator[str | None]:
    """A new PostgreSQL database to restore into when the original used PostgreSQL."""
    if not store_url.startswith("postgresql"):
        yield None
        return
    with fresh_database("restored") as url:
        yield url


def read_all(
    target: KmipdServer, original: KmipdServer, keys: list[Made]
) -> tuple[dict[str, bytes], dict[str, object]]:
    """Get every key over KMIP from ``target``, with the original client certificates."""
    found: dict[str, bytes] = {}
    missing: dict[str, object] = {}
    for instance in ("default", "tenant"):
        context = target.tls_context(certificate=original.credentials(instance))
        with target.connect(context=context) as connection:
            for key in (k for k in keys if k.instance == instance):
                result = kmip.item(connection.call(kmip.get(key.uid)))
                if result.result_status == ResultStatus.SUCCESS:
                    found[key.uid] = result.payload.managed_object.key_block.key_value.key_material
                else:
                    missing[key.uid] = result.result_reason
            # Isolation survived the restore: the tenant does not see the default's keys.
            if instance == "tenant":
                other = next(k for k in keys if k.instance == "default" and k.uid in found)
                refused = kmip.item(connection.call(kmip.get(other.uid)))
                assert refused.result_status != ResultStatus.SUCCESS
    return found, missing


# --- the master key ---------------------------------------------------------------------------


def test_without_the_master_key_the_keys_cannot_be_read(tmp_path: Path) -> None:
    server = init_server(tmp_path / "data")
    server.start()
    try:
        keys = {}
        for _ in range(3):
            uid = kmip.created_uid(server.call(kmip.create_aes()))
            keys[uid] = kmip.key_material(server.call(kmip.get(uid)))
    finally:
        server.stop()
    backup = tmp_path / "backup.tar.gz"
    made = kmipd("backup", "--data-dir", str(server.data_dir), "--to", str(backup))
    assert made.returncode == 0, output(made)
    master = server.data_dir / "keyring" / "master.key"

    # No master key: restored, with a warning that says what is missing.
    bare = tmp_path / "bare"
    restored = restore(backup, bare)
    assert restored.returncode == 0, output(restored)
    assert "no keyring master key was given" in restored.stderr
    assert str(bare / "keyring" / "master.key") in restored.stderr
    assert not (bare / "keyring" / "master.key").exists()
    # The node does not serve keys it cannot read: it refuses to start, saying why.
    target = restored_server(bare)
    refused = serve_once(target)
    assert refused.returncode == 1, output(refused)
    assert "master.key is missing" in refused.stderr and MASTER_KEY_ENV in refused.stderr
    assert TRACEBACK not in output(refused)
    assert not (bare / "keyring" / "master.key").exists()  # no new master key was made

    # A wrong master key: refused by restore itself, nothing written.
    wrong = tmp_path / "wrong.key"
    wrong.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    wrong.chmod(0o600)
    refused = restore(backup, tmp_path / "wrong", master_key=wrong)
    assert refused.returncode == 2, output(refused)
    assert "does not open the backup's keyring" in refused.stderr
    assert TRACEBACK not in output(refused)
    assert not (tmp_path / "wrong").exists()

    # The right master key put in place later: every key reads again, byte for byte.
    (bare / "keyring" / "master.key").write_bytes(master.read_bytes())
    (bare / "keyring" / "master.key").chmod(0o600)
    target.start()
    try:
        context = target.tls_context(certificate=server.credentials())
        with target.connect(context=context) as connection:
            for uid, material in keys.items():
                assert kmip.key_material(connection.call(kmip.get(uid))) == material
    finally:
        target.stop()


# --- bad backups --------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def rewrite(
    source: Path,
    target: Path,
    members: dict[str, bytes | None] | None = None,
    manifest: dict[str, object] | None = None,
    *,
    fix_checksums: bool = True,
) -> Path:
    """A copy of a backup with members changed (None: removed) and manifest fields set; with
    ``fix_checksums`` the manifest's checksums are made to match, so that only the change
    itself can be what a restore refuses."""
    contents = members_of(source)
    for name, data in (members or {}).items():
        if data is None:
            contents.pop(name, None)
        else:
            contents[name] = data
    fields = json.loads(contents[archive.MANIFEST])
    if fix_checksums:
        fields["files"] = {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in contents.items()
            if name != archive.MANIFEST
        }
        fields["checksum"] = archive._checksum(fields["files"])
    fields.update(manifest or {})
    contents[archive.MANIFEST] = json.dumps(fields).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    target.write_bytes(buffer.getvalue())
    return target


def test_bad_backups_are_refused_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    init_server(data_dir)
    good = tmp_path / "good.tar.gz"
    code, text = run(capsys, "backup", "--data-dir", str(data_dir), "--to", str(good))
    assert code == 0, text
    code, text = run(capsys, "backup", "--data-dir", str(data_dir), "--to", str(good))
    assert code == 2 and "already exists" in text

    raw = good.read_bytes()
    store = members_of(good)[archive.STORE]
    tampered = bytearray(store)
    tampered[len(store) // 2] ^= 0x01
    (tmp_path / "text.tar.gz").write_text("not a backup\n")
    (tmp_path / "truncated.tar.gz").write_bytes(raw[: len(raw) // 2])
    cases = {
        "truncated.tar.gz": "is not a kmipd backup or is damaged",
        "text.tar.gz": "is not a kmipd backup or is damaged",
        rewrite(
            good,
            tmp_path / "tampered.tar.gz",
            {archive.STORE: bytes(tampered)},
            fix_checksums=False,
        ).name: "store.db does not match its SHA-256 checksum",
        rewrite(
            good, tmp_path / "dropped.tar.gz", {archive.KEYRING: None}, fix_checksums=False
        ).name: "are not those its manifest lists",
        rewrite(
            good, tmp_path / "manifest.tar.gz", manifest={"checksum": "0" * 64}
        ).name: "the manifest's checksum does not match",
        rewrite(good, tmp_path / "format.tar.gz", manifest={"format_version": 2}).name: (
            "is in backup format 2, newer than this kmipd"
        ),
        rewrite(
            good, tmp_path / "schema.tar.gz", manifest={"schema_version": migrations.LATEST + 1}
        ).name: f"schema version {migrations.LATEST + 1}",
        rewrite(good, tmp_path / "escape.tar.gz", {"../escape": b"x"}).name: (
            "holds '../escape', which no kmipd backup has"
        ),
        rewrite(good, tmp_path / "nostore.tar.gz", {archive.STORE: None}).name: "lacks store.db",
        "missing.tar.gz": "does not exist",
    }
    for name, reason in cases.items():
        target = tmp_path / f"restored-{name}"
        code, text = run(
            capsys, "restore", "--from", str(tmp_path / name), "--data-dir", str(target)
        )
        assert code == 2, (name, text)
        assert reason in text, (name, text)
        assert "nothing was restored" in text, (name, text)
        assert not target.exists(), name
    assert not (tmp_path / "escape").exists()

    # A directory that is not empty is refused (exit 1) and left as it was.
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "note").write_text("mine")
    code, text = run(capsys, "restore", "--from", str(good), "--data-dir", str(busy))
    assert code == 1 and "is not an empty directory" in text, text
    assert [p.name for p in busy.iterdir()] == ["note"]
    # The good backup itself restores.
    code, text = run(capsys, "restore", "--from", str(good), "--data-dir", str(tmp_path / "ok"))
    assert code == 0, text
    assert config.load(tmp_path / "ok").store.url == "sqlite:///kmipd.db"
    # Wrong arguments: exit 2, nothing made.
    wrong_arguments = {
        ("--store", "mysql://db/kmipd"): "is not supported",
        ("--pki", str(tmp_path)): "lacks ca.pem, server.pem, server-key.pem",
        ("--pki", str(tmp_path / "ok" / "pki")): "is not the CA certificate of the backed-up",
        ("--keyring-master-key-file", str(tmp_path / "absent.key")): "cannot read",
    }
    for extra, reason in wrong_arguments.items():
        target = tmp_path / "refused"
        code, text = run(capsys, "restore", "--from", str(good), "--data-dir", str(target), *extra)
        assert code == 2 and reason in text, (extra, text)
        assert not target.exists(), extra


# --- the schedule -------------------------------------------------------------------------------


def test_scheduled_backups_are_made_and_pruned(tmp_path: Path) -> None:
    server = init_server(tmp_path / "data")
    server.configure(backup={"schedule_minutes": 0.01, "keep": 2, "directory": "backups"})
    server.start()
    directory = server.data_dir / "backups"
    try:
        uid = kmip.created_uid(server.call(kmip.create_aes()))
        material = kmip.key_material(server.call(kmip.get(uid)))
        deadline = time.monotonic() + 60
        while server.log().count("scheduled backup written") < 4:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
    finally:
        server.stop()
    assert server.log().count("deleted (backup.keep = 2)") >= 2
    kept = backups_in(directory)
    assert len(kept) == 2, kept
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in kept)
    manifest, _ = archive.read(kept[-1])
    assert manifest.schema_version == migrations.LATEST
    restored = restore(
        kept[-1],
        tmp_path / "restored",
        "--pki",
        str(server.data_dir / "pki"),
        master_key=server.data_dir / "keyring" / "master.key",
    )
    assert restored.returncode == 0, output(restored)
    target = restored_server(tmp_path / "restored")
    # --pki: the old CA and server certificate are kept, so clients need no new trust.
    assert target.ca.read_bytes() == server.ca.read_bytes()
    assert (target.data_dir / "pki" / "server-key.pem").stat().st_mode & 0o777 == 0o600
    target.start()
    try:
        with target.connect(context=server.tls_context()) as connection:
            assert kmip.key_material(connection.call(kmip.get(uid))) == material
    finally:
        target.stop()


def test_one_scheduler_at_a_time_holds_the_lease(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    init_server(data_dir).configure(backup={"schedule_minutes": 60.0, "keep": 3})
    settings = config.load(data_dir)

    async def run() -> tuple[Path | None, Path | None, Path | None]:
        store = Store.from_url(settings.store.url, base=data_dir)
        await store.open()
        first, second = BackupScheduler(settings, store), BackupScheduler(settings, store)
        try:
            made = await first.run_once()
            refused = await second.run_once()  # the lease is the first one's
            again = await first.run_once()  # not due: the last backup is recent
            return made, refused, again
        finally:
            await first.close()
            await second.close()
            await store.close()

    made, refused, again = asyncio.run(run())
    assert made is not None and made.is_file()
    assert refused is None and again is None
    assert backups_in(data_dir / "backups") == [made]


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ({"schedule_minutes": -1.0}, "backup.schedule_minutes must be 0 (off) or more"),
        ({"schedule_minutes": 5.0, "keep": 0}, "backup.keep must be 1 or more"),
        ({"schedule_minutes": 5.0, "directory": " "}, "backup.directory must name a directory"),
    ],
)
def test_a_wrong_backup_setting_stops_serve(
    tmp_path: Path, setting: dict[str, object], reason: str
) -> None:
    server = init_server(tmp_path / "data")
    server.configure(backup=setting)
    with pytest.raises(StartupError, match=re.escape(reason)):
        App.build(config.load(server.data_dir))


# --- root keys in a remote service --------------------------------------------------------------


def test_remote_root_keys_are_read_only_while_the_service_is_reachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instance whose root key is in a remote Key Protect (another kmipd): the backup
    keeps the provider's settings but not its API key; the restored node serves the keys
    once the API key is supplied again, and refuses to start while the service is gone."""
    monkeypatch.delenv(KEYPROTECT_API_KEY_ENV, raising=False)
    with keyprotect_server(tmp_path / "remote") as remote:
        api_key = new_api_key(remote, "Manager", "kmipd-a")
        server = init_server(tmp_path / "data")
        settings = config.load(server.data_dir)
        provider = config.ProviderSettings(
            "remote",
            "keyprotect",
            {
                "url": remote.https_url,
                "instance_id": instance_id(remote),
                "api_key": api_key,
                "ca": str(remote.ca),
            },
        )
        (server.data_dir / config.CONFIG_FILE).write_text(
            config.render(dataclasses.replace(settings, root_key_providers=(provider,)))
        )
        server.start()
        try:
            credentials = remote_instance(server, tmp_path)
            keys = {}
            with server.connect(context=server.tls_context(certificate=credentials)) as connection:
                for _ in range(2):
                    uid = kmip.created_uid(connection.call(kmip.create_aes()))
                    keys[uid] = kmip.key_material(connection.call(kmip.get(uid)))
        finally:
            server.stop()
        backup = tmp_path / "backup.tar.gz"
        made = kmipd("backup", "--data-dir", str(server.data_dir), "--to", str(backup))
        assert made.returncode == 0, output(made)
        for name, data in members_of(backup).items():
            assert api_key.encode() not in data, name
        restored = restore(
            backup, tmp_path / "restored", master_key=server.data_dir / "keyring" / "master.key"
        )
        assert restored.returncode == 0, output(restored)
        target = restored_server(tmp_path / "restored")

        refused = serve_once(target)
        assert refused.returncode == 1, output(refused)
        assert "no Key Protect API key" in refused.stderr, refused.stderr
        assert "[root_key_providers.remote]" in refused.stderr and TRACEBACK not in refused.stderr

        monkeypatch.setenv(KEYPROTECT_API_KEY_ENV, api_key)
        target.start()
        try:
            context = target.tls_context(certificate=credentials)
            with target.connect(context=context) as connection:
                for uid, material in keys.items():
                    assert kmip.key_material(connection.call(kmip.get(uid))) == material
        finally:
            target.stop()

    # The remote service is gone: the restored node refuses to start, naming the provider.
    refused = serve_once(target)
    assert refused.returncode == 1, output(refused)
    assert "root key provider 'remote'" in refused.stderr and "is not usable" in refused.stderr
    assert TRACEBACK not in output(refused)


def remote_instance(server: KmipdServer, tmp_path: Path) -> tuple[Path, Path]:
    """Instance ``remote-a`` with its root key in the remote provider; a client's credentials."""
    with admin.https_client(server) as http:
        http.headers.update(admin.bearer(server.admin_api_key))
        reply = http.post("/admin/v1/instances", json={"name": "remote-a", "provider": "remote"})
        assert reply.status_code == 201, reply.text
        assert reply.json()["provider"] == "remote"
        issued = http.post(
            "/admin/v1/instances/remote-a/certificates/issue", json={"common_name": "remote-a"}
        )
        assert issued.status_code == 201, issued.text
        body = issued.json()
    return admin.write_pair(
        tmp_path / "clients", "remote-a", body["certificate"]["pem"], body["private_key_pem"]
    )


def serve_once(server: KmipdServer) -> subprocess.CompletedProcess[str]:
    """``kmipd serve`` expected to refuse to start (it is killed by the timeout otherwise)."""
    return kmipd(
        "serve",
        "--data-dir",
        str(server.data_dir),
        "--kmip-port",
        str(server.kmip_port),
        "--https-port",
        str(server.https_port),
        timeout=60,
    )
