"""``kmipd migrate`` and the store checks around it, through the command line.

* A single-node SQLite setup copied into PostgreSQL (``--from-sqlite``): every key, instance
  and client certificate still works, nothing in PostgreSQL is plaintext key material, and a
  second copy into the same database is refused without changing anything.
* A schema that is behind: ``serve`` refuses it, ``migrate --check`` says so, ``migrate``
  brings it up to date (SQLite and PostgreSQL).
* ``init --store`` on a database that already holds a setup is refused.
* An unsupported store URL stops ``serve`` and ``migrate`` with a message.
"""

from __future__ import annotations

import base64
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from kmipd.protocol._generated import ResultStatus
from tests.support import kmip
from tests.support.postgres import fresh_database
from tests.support.server import KmipdServer, free_port, init_server

TRACEBACK = "Traceback (most recent call last)"


def kmipd(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kmipd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def migrate(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return kmipd("migrate", "--data-dir", str(data_dir), *args)


def serve_refused(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``kmipd serve`` expected to stop by itself (a refusal); fails the test if it serves."""
    try:
        return kmipd(
            "serve",
            "--data-dir",
            str(data_dir),
            "--kmip-port",
            str(free_port()),
            "--https-port",
            str(free_port()),
            timeout=40.0,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("kmipd serve did not refuse to start (still running after 40 s)")


def _postgres_rows(url: str) -> dict[str, int]:
    """Row counts of the tables the copy writes, and the keyring document's revision."""
    with psycopg.connect(url) as conn:
        counts = {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("instances", "certificates", "wrapping_keys", "objects", "api_keys")
        }
        row = conn.execute("SELECT revision, document FROM keyring_document").fetchone()
        counts["keyring_revision"] = row[0] if row else -1
        counts["keyring_length"] = len(row[1]) if row else -1
    return counts


# --- a: SQLite to PostgreSQL ------------------------------------------------------------------


def test_copy_a_sqlite_setup_into_postgresql(tmp_path: Path) -> None:
    server = init_server(tmp_path / "data")
    server.start()
    try:
        keys: dict[tuple[str, str], bytes] = {}
        server.add_instance("tenant")
        for instance in ("default", "default", "default", "tenant", "tenant"):
            uid = kmip.created_uid(server.call(kmip.create_aes(), instance))
            keys[(instance, uid)] = kmip.key_material(server.call(kmip.get(uid), instance))
    finally:
        server.stop()
    sqlite_file = server.data_dir / "kmipd.db"
    assert sqlite_file.is_file()

    with fresh_database("migrate_copy") as url:
        server.configure(store={"url": url})
        copied = migrate(server.data_dir, "--from-sqlite", str(sqlite_file))
        assert copied.returncode == 0, output(copied)
        assert TRACEBACK not in output(copied)
        print(f"\n{copied.stdout.strip()}")

        server.start()
        try:
            for (instance, uid), material in keys.items():
                got = kmip.key_material(server.call(kmip.get(uid), instance))
                assert got == material, (instance, uid)
            # The default client certificate still works: it can make and read a new key.
            uid = kmip.created_uid(server.call(kmip.create_aes()))
            kmip.key_material(server.call(kmip.get(uid)))
            # The tenant's certificate still sees only the tenant's keys.
            default_uid = next(u for (i, u) in keys if i == "default")
            refused = kmip.item(server.call(kmip.get(default_uid), "tenant"))
            assert refused.result_status != ResultStatus.SUCCESS
        finally:
            server.stop()
        assert TRACEBACK not in server.log()

        # No plaintext key material in PostgreSQL: sealed bodies, attributes, wrapped wrapping
        # keys and the keyring document.
        with psycopg.connect(url) as conn:
            blobs = [
                bytes(b) for (b,) in conn.execute("SELECT sealed FROM objects") if b is not None
            ]
            blobs += [bytes(b) for (b,) in conn.execute("SELECT attributes FROM objects")]
            blobs += [bytes(b) for (b,) in conn.execute("SELECT wrapped FROM wrapping_keys")]
            documents = [d for (d,) in conn.execute("SELECT document FROM keyring_document")]
        assert len(blobs) >= 2 * len(keys) and len(documents) == 1
        text = "\n".join(documents)
        for material in keys.values():
            forms = (
                material.hex(),
                material.hex().upper(),
                base64.b64encode(material).decode(),
                base64.urlsafe_b64encode(material).decode().rstrip("="),
            )
            for blob in blobs:
                assert material not in blob
                for form in forms:
                    assert form.encode() not in blob
            assert material.decode("latin-1") not in text
            for form in forms:
                assert form not in text

        # The same copy again: refused (the database is not new), and nothing changes.
        before = _postgres_rows(url)
        again = migrate(server.data_dir, "--from-sqlite", str(sqlite_file))
        assert again.returncode == 1, output(again)
        assert "new database" in output(again), output(again)
        assert TRACEBACK not in output(again)
        assert _postgres_rows(url) == before


# --- b: a schema that is behind ---------------------------------------------------------------


def _set_back_to_version_1(url: str) -> None:
    """As a database of the release before the change feed: schema version 1, no events."""
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url[len("sqlite:///") :])
        try:
            with db:
                db.execute("UPDATE schema_version SET version = 1")
                db.execute("DROP TABLE events")
        finally:
            db.close()
        return
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE schema_version SET version = 1")
        conn.execute("DROP TABLE events")


def test_a_schema_behind_is_refused_until_migrated(tmp_path: Path, store_url: str) -> None:
    server = init_server(tmp_path / "data", store_url=store_url)
    server.start()
    uid = kmip.created_uid(server.call(kmip.create_aes()))
    material = kmip.key_material(server.call(kmip.get(uid)))
    server.stop()

    check = migrate(server.data_dir, "--check")
    assert check.returncode == 0, output(check)
    assert "up to date" in output(check)

    _set_back_to_version_1(store_url)
    refused = serve_refused(server.data_dir)
    assert refused.returncode != 0
    assert "kmipd migrate" in output(refused), output(refused)
    assert TRACEBACK not in output(refused), output(refused)

    check = migrate(server.data_dir, "--check")
    assert check.returncode == 1, output(check)
    assert "kmipd migrate" in output(check), output(check)
    assert TRACEBACK not in output(check)

    migrated = migrate(server.data_dir)
    assert migrated.returncode == 0, output(migrated)
    assert TRACEBACK not in output(migrated)
    assert migrate(server.data_dir, "--check").returncode == 0

    server.start()
    try:
        assert kmip.key_material(server.call(kmip.get(uid))) == material
        kmip.created_uid(server.call(kmip.create_aes()))
    finally:
        server.stop()
    assert TRACEBACK not in server.log()


# --- c: init on a database in use ---------------------------------------------------------------


def test_init_refuses_a_postgresql_database_that_holds_a_setup(tmp_path: Path) -> None:
    with fresh_database("init_in_use") as url:
        first = init_server(tmp_path / "first", store_url=url)
        before = _postgres_rows(url)
        second = kmipd("init", "--data-dir", str(tmp_path / "second"), "--store", url)
        assert second.returncode == 1, output(second)
        assert "copy the data directory" in output(second), output(second)
        assert TRACEBACK not in output(second)
        assert _postgres_rows(url) == before
        # The first setup is untouched and serves.
        first.start()
        try:
            kmip.created_uid(first.call(kmip.create_aes()))
        finally:
            first.stop()


# --- d: an unsupported store URL ----------------------------------------------------------------


def test_an_unsupported_store_url_stops_serve_and_migrate(tmp_path: Path) -> None:
    server: KmipdServer = init_server(tmp_path / "data")
    server.configure(store={"url": "mysql://x"})
    for result in (
        serve_refused(server.data_dir),
        migrate(server.data_dir),
        migrate(server.data_dir, "--check"),
    ):
        assert result.returncode not in (0, None), output(result)
        assert "mysql://x" in output(result) and "not supported" in output(result), output(result)
        assert TRACEBACK not in output(result), output(result)
