"""SIGHUP reloads the TLS files and kmipd.toml without dropping KMIP connections.

A real ``kmipd serve``: while a KMIP connection is open and in use, the server certificate is
replaced on disk (and, separately, a new client certificate is allowed) and SIGHUP sent. A new
connection gets the new server certificate (or is accepted with the new client certificate);
the old connection keeps working, still on the certificate it started with. A reload that
finds a problem is refused and changes nothing; ``[log] format`` changes live.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from kmipd import pki
from kmipd.transport.tls import fingerprint
from tests.support import kmip
from tests.support.server import KmipConnection, KmipdServer, init_server

RELOAD_BOUND = 10.0  # seconds for a reload to show in the log


@pytest.fixture
def server(kmipd_server: KmipdServer) -> KmipdServer:
    return kmipd_server  # conftest's: a fresh server of its own


def _sighup(server: KmipdServer, expect: str) -> None:
    """Send SIGHUP and wait until the log holds one more line with ``expect``."""
    before = server.log().count(expect)
    os.kill(server.pid, signal.SIGHUP)
    deadline = time.monotonic() + RELOAD_BOUND
    while server.log().count(expect) == before:
        assert time.monotonic() < deadline, f"no {expect!r} after SIGHUP:\n{server.log()}"
        assert server.process is not None and server.process.poll() is None, server.log()
        time.sleep(0.05)


def _server_fingerprint(connection: KmipConnection) -> str:
    der = connection.sock.getpeercert(binary_form=True)
    assert der is not None
    return fingerprint(der)


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write a file in place the way an operator's tooling would: a new file renamed over."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    temporary.chmod(mode)
    os.replace(temporary, path)


def _new_server_certificate(server: KmipdServer) -> str:
    """Issue a new server certificate from kmipd's CA and put it in place; its fingerprint."""
    pki_dir = server.data_dir / "pki"
    ca = pki.load_ca(pki_dir / "ca.pem", pki_dir / "ca-key.pem")
    issued = pki.issue_server(ca, ["localhost", "127.0.0.1"])
    _replace(pki_dir / "server-key.pem", issued.private_key_pem(), 0o600)
    _replace(pki_dir / "server.pem", issued.certificate_pem(), 0o644)
    return fingerprint(issued.certificate.public_bytes(serialization.Encoding.DER))


def test_server_certificate_replaced_and_sighup(server: KmipdServer) -> None:
    with server.connect() as old:
        uid = kmip.created_uid(old.call(kmip.create_aes()))
        old_fingerprint = _server_fingerprint(old)

        new_fingerprint = _new_server_certificate(server)
        assert new_fingerprint != old_fingerprint
        _sighup(server, "reloaded:")

        with server.connect() as fresh:
            assert _server_fingerprint(fresh) == new_fingerprint
            assert len(kmip.key_material(fresh.call(kmip.get(uid)))) == 32

        # The connection made before the reload was not dropped and still works, on the
        # certificate it was set up with.
        assert len(kmip.key_material(old.call(kmip.get(uid)))) == 32
        assert kmip.created_uid(old.call(kmip.create_aes()))
        assert _server_fingerprint(old) == old_fingerprint
    assert server.process is not None and server.process.poll() is None


def test_new_client_certificate_allowed_and_sighup(server: KmipdServer) -> None:
    with server.connect() as old:
        uid = kmip.created_uid(old.call(kmip.create_aes()))
        credentials = server.allow_certificate("default", "esxi-host")
        _sighup(server, "reloaded:")

        context = server.tls_context(certificate=credentials)
        with server.connect(context=context) as fresh:
            assert len(kmip.key_material(fresh.call(kmip.get(uid)))) == 32
        assert len(kmip.key_material(old.call(kmip.get(uid)))) == 32


def test_a_reload_with_a_problem_is_refused_and_changes_nothing(server: KmipdServer) -> None:
    with server.connect() as old:
        uid = kmip.created_uid(old.call(kmip.create_aes()))
        before = _server_fingerprint(old)
        key = server.data_dir / "pki" / "server-key.pem"
        _new_server_certificate(server)
        key.chmod(0o644)  # a private key others can read: the start-up checks refuse it
        _sighup(server, "reload refused")
        assert f"chmod 600 {key.resolve()}" in server.log()

        with server.connect() as fresh:
            assert _server_fingerprint(fresh) == before
            assert len(kmip.key_material(fresh.call(kmip.get(uid)))) == 32
        assert len(kmip.key_material(old.call(kmip.get(uid)))) == 32


def test_log_format_changes_live(server: KmipdServer) -> None:
    server.configure(log={"format": "json"}, kmip={"port": 1})  # the port needs a restart
    _sighup(server, '"message": "reloaded:')
    kmip.ok(server.call(kmip.discover_versions()))  # still on its original port
    lines = server.log().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("{"))
    entries = [json.loads(line) for line in lines[start:] if line.strip()]  # all JSON now
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any(
        e["level"] == "warning" and "kmip.port changed in kmipd.toml: restart" in e["message"]
        for e in entries
    ), entries


def test_an_unknown_log_format_is_refused_on_reload(server: KmipdServer) -> None:
    text = (server.data_dir / "kmipd.toml").read_text(encoding="utf-8")
    (server.data_dir / "kmipd.toml").write_text(
        text.replace('format = "text"', 'format = "xml"'), encoding="utf-8"
    )
    _sighup(server, "reload refused")
    assert "log.format must be one of text, json, got 'xml'" in server.log()
    kmip.ok(server.call(kmip.discover_versions()))


def test_systemd_is_told_ready_reloading_and_stopping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Type=notify: READY=1 once the ports are open, RELOADING=1 then READY=1 around a
    reload, STOPPING=1 on SIGTERM; on a real Unix datagram socket, as systemd's."""
    address = tmp_path / "notify.sock"
    assert len(str(address)) < 100  # a Unix socket path's limit
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(address))
        notify.settimeout(RELOAD_BOUND)
        monkeypatch.setenv("NOTIFY_SOCKET", str(address))
        server = init_server(tmp_path / "data")
        server.start()
        try:
            ready = notify.recv(4096).decode()
            assert ready.splitlines()[0] == "READY=1"
            assert f"STATUS=serving KMIP on port {server.kmip_port}," in ready

            os.kill(server.pid, signal.SIGHUP)
            reloading = notify.recv(4096).decode().splitlines()
            assert reloading[0] == "RELOADING=1"
            assert re.fullmatch(r"MONOTONIC_USEC=\d+", reloading[1])
            assert notify.recv(4096).decode() == "READY=1\nSTATUS=serving; reloaded"

            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            assert notify.recv(4096).decode() == "STOPPING=1"
            assert server.process.wait(30) == 0
        finally:
            server.stop()
