"""``kmipd doctor --data-dir DIR`` against a healthy setup and six broken ones.

Each setup is a real ``kmipd init`` data directory, most with a real ``kmipd serve`` running
(the doctor then holds the KMIP conversation vCenter starts with). A healthy setup exits 0
with no FAIL line; each broken one exits 1, and its FAIL lines name exactly the fault (and the
ports, where the fault keeps kmipd from serving) with how to fix it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kmipd import config, pki
from kmipd.store import migrations
from kmipd.store.records import InstanceRecord
from kmipd.transport.tls import fingerprint
from tests.support.cli import Cli
from tests.support.keyprotect import instance_id, keyprotect_server, new_api_key
from tests.support.server import KmipdServer, init_server

LINE = re.compile(r"^(OK  |WARN|FAIL)  \S")


@pytest.fixture
def server(kmipd_server: KmipdServer) -> KmipdServer:
    return kmipd_server  # conftest's: a fresh server of its own


def doctor(server: KmipdServer, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code, out, err = Cli(server, capsys)("doctor")
    assert "Traceback" not in out + err, out + err
    lines = out.splitlines()
    checks, summary = lines[:-1], lines[-1]
    assert checks and all(LINE.match(line) for line in checks), out
    assert re.fullmatch(r"\d+ checks: \d+ failed, \d+ warnings", summary), summary
    return code, checks


def failures(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


def not_serving(server: KmipdServer) -> list[str]:
    """The FAIL lines of a setup whose kmipd is not running."""
    return [
        f"FAIL  KMIP port 127.0.0.1:{server.kmip_port} (kmip.port): nothing is listening",
        f"FAIL  HTTPS port 127.0.0.1:{server.https_port} (https.port): nothing is listening",
    ]


def assert_fails_with(lines: list[str], *expected: str) -> None:
    """Every FAIL line starts with one of ``expected``, each of which is there."""
    failed = failures(lines)
    for prefix in expected:
        assert any(line.startswith(prefix) for line in failed), (prefix, failed)
    for line in failed:
        assert any(line.startswith(prefix) for prefix in expected), (line, expected)
        assert " -- fix: " in line, line


def test_a_healthy_running_setup_passes(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = init_server(tmp_path / "data", store_url=store_url)
    server.start()
    try:
        code, lines = doctor(server, capsys)
    finally:
        server.stop()
    assert code == 0, lines
    assert failures(lines) == []
    text = "\n".join(lines)
    assert f"schema version {migrations.LATEST} (up to date)" in text
    assert re.search(r"OK    root key \S+ of instance default: active", text), text
    assert "OK    client certificate 'CN=kmipd client default,O=kmipd' of instance default" in text
    assert f"OK    KMIP port 127.0.0.1:{server.kmip_port} (kmip.port): this kmipd answers" in text
    conversation = r"OK    KMIP as vCenter .*DiscoverVersions \(2\.1, .*1\.1, 1\.0\), Query"
    assert re.search(conversation, text), text
    if store_url.startswith("postgresql"):
        assert re.search(r"OK    clock: \d+\.\d s (behind|ahead of) the database server", text)


def test_expired_client_certificate(
    server: KmipdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    pki_dir = server.data_dir / "pki"
    ca = pki.load_ca(pki_dir / "ca.pem", pki_dir / "ca-key.pem")
    issued_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    expired = pki.issue_client(ca, "esxi-07", now=issued_at, days=3)
    fingerprint = server.pin_certificate("default", expired.certificate)

    code, lines = doctor(server, capsys)
    assert code == 1
    assert_fails_with(
        lines, "FAIL  client certificate 'CN=esxi-07,O=kmipd' of instance default (SHA-256"
    )
    (line,) = failures(lines)
    assert " expired on " in line
    assert f"kmipd cert delete default {fingerprint[:16]}" in line


def test_unreachable_root_key_provider(
    server: KmipdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A provider an instance uses (a Key Protect on 127.0.0.1:1, where nothing listens),
    configured while kmipd runs: the running server is fine, the next start would not be."""
    settings = config.load(server.data_dir)
    provider = config.ProviderSettings(
        "vault-east",
        "keyprotect",
        {
            "url": "https://127.0.0.1:1",
            "instance_id": "00000000-0000-0000-0000-000000000000",
            "api_key_env": "KMIPD_DOCTOR_TEST_UNSET",
            "timeout": 2.0,
        },
    )
    settings = dataclasses.replace(settings, root_key_providers=(provider,))
    (server.data_dir / config.CONFIG_FILE).write_text(config.render(settings), encoding="utf-8")

    async def add(store: object) -> None:
        record = InstanceRecord(
            "tenant-east", "11111111-2222-3333-4444-555555555555", int(time.time()), "vault-east"
        )
        await store.add_instance(record)  # type: ignore[attr-defined]

    server.with_store(add)

    code, lines = doctor(server, capsys)
    assert code == 1
    assert_fails_with(
        lines, "FAIL  root key provider 'vault-east' (used by tenant-east) is unreachable"
    )
    assert "[root_key_providers.vault-east]" in failures(lines)[0]


def test_deleted_root_key(server: KmipdServer, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(server, capsys)
    code, _, err = cli("instance", "root-key", "delete", "default", "--yes")
    assert code == 0, err

    code, lines = doctor(server, capsys)
    assert code == 1
    assert_fails_with(lines, "FAIL  root key ")
    (line,) = failures(lines)
    assert re.match(r"FAIL  root key \S+ of instance default is deleted", line), line
    assert "kmipd rootkey restore" in line


def test_unmigrated_database(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = init_server(tmp_path / "data", store_url=store_url)
    _set_schema_version(store_url, 2)

    code, lines = doctor(server, capsys)
    assert code == 1
    database = [line for line in failures(lines) if " is not migrated: " in line]
    assert_fails_with(lines, *not_serving(server), *database)  # kmipd refuses to start on it
    assert len(database) == 1, lines
    assert f"schema version 2, this kmipd needs {migrations.LATEST}" in database[0]
    assert f"kmipd migrate --data-dir {server.data_dir.resolve()}" in database[0]


def test_a_private_key_readable_by_others(
    server: KmipdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server_key = (server.data_dir / "pki" / "server-key.pem").resolve()
    client_key = (server.data_dir / "clients" / "default" / "client-key.pem").resolve()
    server_key.chmod(0o644)
    client_key.chmod(0o644)

    code, lines = doctor(server, capsys)
    assert code == 1
    assert_fails_with(lines, f"FAIL  {server_key} ", f"FAIL  {client_key} ")
    for line in failures(lines):
        assert "(mode 644)" in line
        assert re.search(rf"fix: (run ')?chmod 600 {re.escape(str(line.split()[1]))}", line)


def test_kmip_port_in_use_by_another_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = init_server(tmp_path / "data")
    squatter = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(server.kmip_port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(server.kmip_port)
        code, lines = doctor(server, capsys)
    finally:
        squatter.terminate()
        squatter.wait(10)
    assert code == 1
    https = not_serving(server)[1]
    in_use = (
        f"FAIL  KMIP port 127.0.0.1:{server.kmip_port} (kmip.port) is in use by another "
        f"process (pid {squatter.pid}: "
    )
    assert_fails_with(lines, in_use, https)
    (line,) = [line for line in failures(lines) if line.startswith(in_use)]
    assert "http.server" in line and "set kmip.port in" in line


def _set_schema_version(url: str, version: int) -> None:
    """As a database left one release behind (what ``kmipd serve`` refuses to start on)."""
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url[len("sqlite:///") :])
        try:
            with db:
                db.execute("UPDATE schema_version SET version = ?", (version,))
        finally:
            db.close()
        return
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (version,))


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)


def test_a_server_certificate_replaced_without_a_reload(
    server: KmipdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not one of the six, but what an operator who forgot `systemctl reload` sees."""
    pki_dir = server.data_dir / "pki"
    ca = pki.load_ca(pki_dir / "ca.pem", pki_dir / "ca-key.pem")
    issued = pki.issue_server(ca, ["localhost", "127.0.0.1"])
    (pki_dir / "server-key.pem").write_bytes(issued.private_key_pem())  # stays 0600
    (pki_dir / "server.pem").write_bytes(issued.certificate_pem())

    code, lines = doctor(server, capsys)
    assert code == 1
    stale = f"FAIL  KMIP port 127.0.0.1:{server.kmip_port} (kmip.port): kmipd (pid {server.pid})"
    assert_fails_with(lines, stale, f"FAIL  HTTPS port 127.0.0.1:{server.https_port}")
    assert f"kill -HUP {server.pid}" in failures(lines)[0]

    os.kill(server.pid, signal.SIGHUP)  # the KMIP port takes the new certificate
    deadline = time.monotonic() + 10
    while "reloaded:" not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    code, lines = doctor(server, capsys)
    # The HTTPS port keeps its certificate until a restart (README: what SIGHUP reloads).
    assert_fails_with(lines, f"FAIL  HTTPS port 127.0.0.1:{server.https_port}")
    assert "fix: systemctl restart kmipd" in failures(lines)[0]
    answers = f"OK    KMIP port 127.0.0.1:{server.kmip_port} (kmip.port): this kmipd answers"
    assert any(line.startswith(answers) for line in lines), lines


def test_an_unreadable_configuration_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = init_server(tmp_path / "data")
    toml = server.data_dir / config.CONFIG_FILE
    toml.write_text(toml.read_text().replace("[kmip]\n", "[kmip]\nport_number = 1\n", 1))
    code, out, err = Cli(server, capsys)("doctor")
    assert code == 2
    assert out == ""
    assert "unknown setting kmip.port_number" in err and "Traceback" not in err


def test_the_instance_client_certificate_no_longer_allowed(
    server: KmipdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """vCenter's certificate removed from the store: the conversation as vCenter fails."""
    certificate = x509.load_pem_x509_certificate(server.credentials()[0].read_bytes())
    assert server.remove_certificate(
        fingerprint(certificate.public_bytes(serialization.Encoding.DER))
    )

    code, lines = doctor(server, capsys)
    assert code == 1
    assert_fails_with(lines, "FAIL  KMIP as vCenter (default's client certificate ")
    assert "it does not accept that certificate" in failures(lines)[0]
    assert "kmipd cert list default" in failures(lines)[0]
    assert any(line.startswith("WARN  no client certificate is allowed") for line in lines)


def test_a_remote_root_key_provider_is_reached_and_its_clock_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Key Protect provider (another kmipd's /api/v2) in kmipd.toml, its API key in the
    environment: reachable, and its HTTP Date agrees with this clock (same host)."""
    with keyprotect_server(tmp_path / "remote") as remote:
        monkeypatch.setenv("KMIPD_DOCTOR_TEST_KP_KEY", new_api_key(remote, "Reader"))
        server = init_server(tmp_path / "data")
        settings = config.load(server.data_dir)
        provider = config.ProviderSettings(
            "remote",
            "keyprotect",
            {
                "url": remote.https_url,
                "instance_id": instance_id(remote),
                "api_key_env": "KMIPD_DOCTOR_TEST_KP_KEY",
                "ca": str(remote.ca),
            },
        )
        settings = dataclasses.replace(settings, root_key_providers=(provider,))
        (server.data_dir / config.CONFIG_FILE).write_text(config.render(settings))
        server.start()
        try:
            code, lines = doctor(server, capsys)
        finally:
            server.stop()
    assert code == 0, lines
    text = "\n".join(lines)
    assert "OK    root key provider 'remote' (used by no instance): reachable" in text
    assert re.search(
        rf"OK    clock: \d\.\d s (behind|ahead of) root key provider 'remote' "
        rf"\({re.escape(remote.https_url)}\)",
        text,
    ), text
